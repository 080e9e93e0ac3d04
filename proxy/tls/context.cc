#include "proxy/tls/context.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/data_source.h"
#include "proxy/tls/connection.h"

namespace sluice::tls {
namespace v1 = config::v1;

namespace {

// TLS 1.2 suites by default: forward secrecy and AEAD only (Mozilla's "intermediate" list).
constexpr char kDefaultCiphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr long kDefaultSessionTimeoutSeconds = 300;
constexpr char kHttp11Alpn[] = "\x08http/1.1";

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// Debian's abseil has its own string_view.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string lower(std::string_view s) { return absl::AsciiStrToLower(av(s)); }
bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(av(a), av(b));
}

// Where a context's accepted subjectAltNames hang on its SSL_CTX, for the verify callback.
int acceptIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Set on an SSL whose ALPN negotiation failed: OpenSSL and BoringSSL report it differently.
int alpnFailedIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// PEM reading must never ask for a password: OpenSSL's default callback reads the terminal.
int noPassword(char*, int, int, void*) { return 0; }

std::vector<X509Ptr> readCertificates(const std::string& pem) {
  std::vector<X509Ptr> out;
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, noPassword, nullptr)) out.emplace_back(x);
  // The read that ended the loop left "no start line" in the error queue.
  ERR_clear_error();
  return out;
}

std::unique_ptr<EVP_PKEY, PkeyFree> readKey(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key =
      bio == nullptr ? nullptr : PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassword, nullptr);
  ERR_clear_error();
  return std::unique_ptr<EVP_PKEY, PkeyFree>(key);
}

std::string_view asView(const ASN1_STRING* s) {
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          static_cast<size_t>(ASN1_STRING_length(s))};
}

// Calls `fn(type, value)` for each DNS, URI and email subjectAltName of `cert`.
template <class Fn>
void forEachSan(X509* cert, const Fn& fn) {
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (names == nullptr) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    switch (name->type) {
      case GEN_DNS:
        fn(GEN_DNS, asView(name->d.dNSName));
        break;
      case GEN_URI:
        fn(GEN_URI, asView(name->d.uniformResourceIdentifier));
        break;
      case GEN_EMAIL:
        fn(GEN_EMAIL, asView(name->d.rfc822Name));
        break;
      default:
        break;
    }
  }
}

// An accepted name against a certificate's: DNS names case-insensitively, "*.example.com" for
// exactly one more label; URIs and email addresses exactly.
bool sanAccepted(X509* cert, const std::vector<std::string>& accept) {
  bool found = false;
  forEachSan(cert, [&](int type, std::string_view value) {
    for (const std::string& a : accept) {
      if (found) return;
      if (type != GEN_DNS) {
        found = value == a;
      } else if (absl::StartsWith(a, "*.")) {
        const size_t dot = value.find('.');
        found = dot != std::string_view::npos && dot > 0 &&
                equalsIgnoreCase(value.substr(dot + 1), std::string_view(a).substr(2));
      } else {
        found = equalsIgnoreCase(value, a);
      }
    }
  });
  return found;
}

// Checks the leaf's subjectAltNames once its chain verified; a mismatch fails the handshake
// with a bad_certificate alert, and X509_V_ERR_APPLICATION_VERIFICATION tells it apart.
int verifyPeer(int ok, X509_STORE_CTX* store) {
  if (ok == 0 || X509_STORE_CTX_get_error_depth(store) != 0) return ok;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const auto* accept = static_cast<const std::vector<std::string>*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), acceptIndex()));
  if (accept == nullptr || accept->empty()) return 1;
  if (sanAccepted(X509_STORE_CTX_get_current_cert(store), *accept)) return 1;
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

int protocolVersion(v1::TlsVersion v, int fallback) {
  switch (v) {
    case v1::TLS_V1_2:
      return TLS1_2_VERSION;
    case v1::TLS_V1_3:
      return TLS1_3_VERSION;
    default:
      return fallback;
  }
}

// Versions, cipher suites and the I/O modes every context of ours uses.
absl::Status applyParams(SSL_CTX* ctx, const v1::TlsParameters& params, const std::string& name) {
  SSL_CTX_set_min_proto_version(ctx, protocolVersion(params.min_version(), TLS1_2_VERSION));
  SSL_CTX_set_max_proto_version(ctx, protocolVersion(params.max_version(), TLS1_3_VERSION));
  // Partial writes and a moving buffer let a write retry from wherever the evbuffer's bytes are
  // now; released buffers keep an idle connection to a few hundred bytes of TLS state.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // Renegotiation only opens doors (CPU exhaustion, the 2009 prefix attack); HTTP/1.1 over
  // TLS never needs it. BoringSSL never renegotiates as a server and has no such option.
#ifdef SSL_OP_NO_RENEGOTIATION
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
#endif
  // A peer that closes without close_notify is an EOF, as on plain TCP (HTTP frames its
  // messages; most clients skip the alert).
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (params.cipher_suites().empty()) {
    SSL_CTX_set_cipher_list(ctx, kDefaultCiphers);
    return absl::OkStatus();
  }
  // One at a time: a list is accepted as soon as one of its names is known.
  for (int i = 0; i < params.cipher_suites_size(); ++i) {
    if (SSL_CTX_set_cipher_list(ctx, params.cipher_suites(i).c_str()) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat(name, " tls.params.cipher_suites[", i, "]: '", params.cipher_suites(i),
                       "' is not a TLS 1.2 cipher suite this build knows"));
    }
  }
  SSL_CTX_set_cipher_list(ctx, absl::StrJoin(params.cipher_suites(), ":").c_str());
  return absl::OkStatus();
}

// Certificates the peer must chain to, in `ctx`'s store.
void trust(SSL_CTX* ctx, const std::vector<X509Ptr>& cas) {
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const X509Ptr& ca : cas) X509_STORE_add_cert(store, ca.get());
}

// A certificate chain and its key into `ctx`. `field` names the TlsCertificate in errors.
absl::Status useCertificate(SSL_CTX* ctx, const std::string& chain_pem, const std::string& key_pem,
                            const std::string& field, X509Ptr* leaf) {
  std::vector<X509Ptr> chain = readCertificates(chain_pem);
  if (chain.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".certificate_chain: no PEM certificate in it"));
  }
  auto key = readKey(key_pem);
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".private_key: no PEM private key in it (encrypted keys are not supported)"));
  }
  if (SSL_CTX_use_certificate(ctx, chain[0].get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".certificate_chain: its first certificate cannot be used"));
  }
  for (size_t i = 1; i < chain.size(); ++i) SSL_CTX_add1_chain_cert(ctx, chain[i].get());
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": private_key does not match the first certificate of certificate_chain"));
  }
  *leaf = std::move(chain[0]);
  return absl::OkStatus();
}

// The bytes of `source` for a context's fingerprint, prefixed with their length.
void appendInput(std::string* all, const std::string& bytes) {
  absl::StrAppend(all, bytes.size(), ":", bytes);
}

std::string sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

bool isFile(const v1::DataSource& source) {
  return source.specifier_case() == v1::DataSource::kFilename;
}

long sessionTimeoutSeconds(const v1::DownstreamTls& config) {
  if (!config.has_session_timeout()) return kDefaultSessionTimeoutSeconds;
  const auto& d = config.session_timeout();
  // OpenSSL counts whole seconds; a fraction rounds up so that a short timeout is not "off".
  return d.seconds() + (d.nanos() > 0 ? 1 : 0);
}

}  // namespace

const char* handshakeFailureName(HandshakeFailure failure) {
  switch (failure) {
    case HandshakeFailure::kProtocol:
      return "protocol";
    case HandshakeFailure::kAlpn:
      return "alpn";
    case HandshakeFailure::kNoCertificate:
      return "no_certificate";
    case HandshakeFailure::kVerify:
      return "fail_verify";
    case HandshakeFailure::kVerifySan:
      return "fail_verify_san";
    case HandshakeFailure::kClosed:
      return "closed";
    case HandshakeFailure::kTimeout:
      return "timeout";
  }
  return "unknown";
}

PeerInfo peerInfo(SSL* ssl) {
  PeerInfo info;
  X509Ptr cert(SSL_get_peer_certificate(ssl));
  if (cert == nullptr) return info;
  info.presented = true;
  info.verified = SSL_get_verify_result(ssl) == X509_V_OK;
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (bio != nullptr &&
      X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert.get()), 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    if (len > 0) info.subject.assign(data, static_cast<size_t>(len));
  }
  forEachSan(cert.get(), [&](int, std::string_view value) { info.sans.emplace_back(value); });
  return info;
}

absl::StatusOr<std::shared_ptr<const ServerContext>> ServerContext::create(
    const v1::DownstreamTls& config, std::string name,
    std::shared_ptr<const ServerContext> previous) {
  // Read everything first: an unchanged context is found without compiling anything.
  std::vector<std::pair<std::string, std::string>> pems;  // chain, key
  std::string inputs = config.SerializeAsString();
  bool reads_files = false;
  for (int i = 0; i < config.certificates_size(); ++i) {
    const v1::TlsCertificate& c = config.certificates(i);
    const std::string field = absl::StrCat(name, " tls.certificates[", i, "]");
    auto chain = config::readDataSource(c.certificate_chain(), field + ".certificate_chain");
    if (!chain.ok()) return chain.status();
    auto key = config::readDataSource(c.private_key(), field + ".private_key");
    if (!key.ok()) return key.status();
    appendInput(&inputs, *chain);
    appendInput(&inputs, *key);
    reads_files = reads_files || isFile(c.certificate_chain()) || isFile(c.private_key());
    pems.emplace_back(*std::move(chain), *std::move(key));
  }
  if (pems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " tls.certificates: none given"));
  }
  const bool asks = config.client_certificate() != v1::DownstreamTls::NONE;
  std::string ca_pem;
  if (asks) {
    const v1::DataSource& ca = config.client_validation().trusted_ca();
    auto bytes = config::readDataSource(ca, name + " tls.client_validation.trusted_ca");
    if (!bytes.ok()) return bytes.status();
    ca_pem = *std::move(bytes);
    appendInput(&inputs, ca_pem);
    reads_files = reads_files || isFile(ca);
  }
  std::string fingerprint = sha256(inputs);
  if (previous != nullptr && previous->fingerprint_ == fingerprint) return previous;

  auto ctx = std::shared_ptr<ServerContext>(new ServerContext());
  ctx->config_ = config;
  ctx->name_ = std::move(name);
  ctx->reads_files_ = reads_files;
  ctx->asks_client_certificate_ = asks;
  ctx->fingerprint_ = std::move(fingerprint);
  for (const std::string& san : config.client_validation().match_subject_alt_names()) {
    ctx->accept_.push_back(san);
  }
  const auto& alpn = config.alpn_protocols();
  if (alpn.empty()) {
    ctx->alpn_ = kHttp11Alpn;
  } else {
    for (const std::string& p : alpn) {
      ctx->alpn_.push_back(static_cast<char>(p.size()));
      ctx->alpn_.append(p);
    }
  }
  std::vector<X509Ptr> cas;
  if (asks) {
    cas = readCertificates(ca_pem);
    if (cas.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(ctx->name_, " tls.client_validation.trusted_ca: no PEM certificate in it"));
    }
  }
  const long session_timeout = sessionTimeoutSeconds(config);
  for (size_t i = 0; i < pems.size(); ++i) {
    SSL_CTX* c = SSL_CTX_new(TLS_server_method());
    if (c == nullptr) return absl::ResourceExhaustedError("cannot create an SSL_CTX");
    ctx->contexts_.push_back(c);
    if (absl::Status s = applyParams(c, config.params(), ctx->name_); !s.ok()) return s;
    X509Ptr leaf;
    const std::string field = absl::StrCat(ctx->name_, " tls.certificates[", i, "]");
    if (absl::Status s = useCertificate(c, pems[i].first, pems[i].second, field, &leaf); !s.ok()) {
      return s;
    }
    auto addName = [&](std::string_view n) {
      std::string lowered = lower(n);
      if (absl::StartsWith(lowered, "*.")) {
        ctx->wildcard_names_.try_emplace(lowered.substr(2), i);
      } else {
        ctx->exact_names_.try_emplace(std::move(lowered), i);
      }
    };
    const auto& names = config.certificates(static_cast<int>(i)).server_names();
    if (!names.empty()) {
      for (const std::string& n : names) addName(n);
    } else {
      forEachSan(leaf.get(), [&](int type, std::string_view value) {
        if (type == GEN_DNS) addName(value);
      });
    }
    // Sessions are bound to this config: one from another (other CAs) must not resume here.
    SSL_CTX_set_session_id_context(
        c, reinterpret_cast<const unsigned char*>(ctx->fingerprint_.data()),
        std::min<unsigned>(ctx->fingerprint_.size(), SSL_MAX_SID_CTX_LENGTH));
    if (session_timeout > 0) {
      // Tickets are sealed with keys SSL_CTX_new draws at random: each context has its own, so
      // a ticket outlives neither this config nor the process. The cache serves clients
      // without tickets.
      SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
      SSL_CTX_set_timeout(c, session_timeout);
    } else {
      SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    }
    if (asks) {
      const int mode = config.client_certificate() == v1::DownstreamTls::REQUIRE
                           ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                           : SSL_VERIFY_PEER;
      SSL_CTX_set_verify(c, mode, verifyPeer);
      trust(c, cas);
      // Tells clients which CAs we accept, so that one with several certificates picks right.
      STACK_OF(X509_NAME)* ca_names = sk_X509_NAME_new_null();
      for (const X509Ptr& ca : cas) {
        sk_X509_NAME_push(ca_names, X509_NAME_dup(X509_get_subject_name(ca.get())));
      }
      SSL_CTX_set_client_CA_list(c, ca_names);
      SSL_CTX_set_ex_data(c, acceptIndex(), &ctx->accept_);
    }
    SSL_CTX_set_alpn_select_cb(c, &ServerContext::onAlpn, ctx.get());
    SSL_CTX_set_tlsext_servername_callback(c, &ServerContext::onServerName);
    SSL_CTX_set_tlsext_servername_arg(c, ctx.get());
  }
  return std::shared_ptr<const ServerContext>(std::move(ctx));
}

ServerContext::~ServerContext() {
  for (SSL_CTX* c : contexts_) SSL_CTX_free(c);
}

std::unique_ptr<Connection> ServerContext::accept(int fd) const {
  SSL* ssl = SSL_new(contexts_[0]);
  if (ssl == nullptr) return nullptr;
  SSL_set_fd(ssl, fd);
  SSL_set_accept_state(ssl);
  return std::make_unique<Connection>(ssl, shared_from_this());
}

size_t ServerContext::certificateFor(std::string_view server_name) const {
  if (server_name.empty() || contexts_.size() == 1) return 0;
  std::string name = lower(server_name);
  if (name.back() == '.') name.pop_back();
  if (auto it = exact_names_.find(name); it != exact_names_.end()) return it->second;
  const size_t dot = name.find('.');
  if (dot != std::string::npos && dot > 0) {
    if (auto it = wildcard_names_.find(absl::string_view(name).substr(dot + 1));
        it != wildcard_names_.end()) {
      return it->second;
    }
  }
  return 0;
}

int ServerContext::onServerName(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  const size_t index = self->certificateFor(name != nullptr ? name : "");
  if (index != 0) SSL_set_SSL_CTX(ssl, self->contexts_[index]);
  return SSL_TLSEXT_ERR_OK;
}

int ServerContext::onAlpn(SSL* ssl, const unsigned char** out, unsigned char* out_len,
                          const unsigned char* in, unsigned int in_len, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  unsigned char* selected = nullptr;
  // Our preference order: the first of our protocols the client offers.
  if (SSL_select_next_proto(
          &selected, out_len, reinterpret_cast<const unsigned char*>(self->alpn_.data()),
          static_cast<unsigned int>(self->alpn_.size()), in, in_len) != OPENSSL_NPN_NEGOTIATED) {
    SSL_set_ex_data(ssl, alpnFailedIndex(), const_cast<ServerContext*>(self));
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

absl::StatusOr<std::shared_ptr<const ClientContext>> ClientContext::create(
    const v1::UpstreamTls& config, std::string name,
    std::shared_ptr<const ClientContext> previous) {
  std::string inputs = config.SerializeAsString();
  const v1::DataSource& ca_source = config.validation().trusted_ca();
  if (!config::hasDataSource(ca_source)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " tls.validation.trusted_ca: required (upstream certificates are always verified)"));
  }
  auto ca_pem = config::readDataSource(ca_source, name + " tls.validation.trusted_ca");
  if (!ca_pem.ok()) return ca_pem.status();
  appendInput(&inputs, *ca_pem);
  bool reads_files = isFile(ca_source);
  const v1::TlsCertificate& cc = config.client_certificate();
  const bool has_client_cert =
      config::hasDataSource(cc.certificate_chain()) || config::hasDataSource(cc.private_key());
  std::string chain_pem, key_pem;
  if (has_client_cert) {
    const std::string field = name + " tls.client_certificate";
    auto chain = config::readDataSource(cc.certificate_chain(), field + ".certificate_chain");
    if (!chain.ok()) return chain.status();
    auto key = config::readDataSource(cc.private_key(), field + ".private_key");
    if (!key.ok()) return key.status();
    chain_pem = *std::move(chain);
    key_pem = *std::move(key);
    appendInput(&inputs, chain_pem);
    appendInput(&inputs, key_pem);
    reads_files = reads_files || isFile(cc.certificate_chain()) || isFile(cc.private_key());
  }
  std::string fingerprint = sha256(inputs);
  if (previous != nullptr && previous->fingerprint_ == fingerprint) return previous;

  static std::atomic<uint64_t> next_id{1};
  auto ctx = std::shared_ptr<ClientContext>(new ClientContext());
  ctx->config_ = config;
  ctx->name_ = std::move(name);
  ctx->reads_files_ = reads_files;
  ctx->fingerprint_ = std::move(fingerprint);
  ctx->id_ = next_id.fetch_add(1, std::memory_order_relaxed);
  for (const std::string& san : config.validation().match_subject_alt_names()) {
    ctx->accept_.push_back(san);
  }
  std::vector<X509Ptr> cas = readCertificates(*ca_pem);
  if (cas.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx->name_, " tls.validation.trusted_ca: no PEM certificate in it"));
  }
  ctx->ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx->ctx_ == nullptr) return absl::ResourceExhaustedError("cannot create an SSL_CTX");
  SSL_CTX* c = ctx->ctx_;
  if (absl::Status s = applyParams(c, config.params(), ctx->name_); !s.ok()) return s;
  if (has_client_cert) {
    X509Ptr leaf;
    absl::Status s =
        useCertificate(c, chain_pem, key_pem, ctx->name_ + " tls.client_certificate", &leaf);
    if (!s.ok()) return s;
  }
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, verifyPeer);
  trust(c, cas);
  SSL_CTX_set_ex_data(c, acceptIndex(), &ctx->accept_);
  // Sessions go to the connection that got them (onNewSession), and from there to its pool,
  // which offers them to the next connection to the same endpoint.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, &ClientContext::onNewSession);
  // Returns 0 on success, unlike the rest of the API.
  SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(kHttp11Alpn),
                          sizeof(kHttp11Alpn) - 1);
  return std::shared_ptr<const ClientContext>(std::move(ctx));
}

ClientContext::~ClientContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

SSL* ClientContext::newSsl(std::string_view host) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  const std::string name(config_.sni().empty() ? host : std::string_view(config_.sni()));
  if (!name.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    unsigned char ip[16];
    if (inet_pton(AF_INET, name.c_str(), ip) == 1 || inet_pton(AF_INET6, name.c_str(), ip) == 1) {
      // SNI carries host names only; an address is checked against the IP subjectAltNames.
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, name.c_str());
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, name.data(), name.size());
    }
  }
  return ssl;
}

std::unique_ptr<Connection> ClientContext::connect(int fd, std::string_view host,
                                                   SSL_SESSION* session) const {
  SSL* ssl = newSsl(host);
  if (ssl == nullptr) return nullptr;
  if (session != nullptr) SSL_set_session(ssl, session);
  SSL_set_fd(ssl, fd);
  SSL_set_connect_state(ssl);
  auto conn = std::make_unique<Connection>(ssl, shared_from_this());
  SSL_set_app_data(ssl, conn.get());
  return conn;
}

int ClientContext::onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* conn = static_cast<Connection*>(SSL_get_app_data(ssl));
  if (conn == nullptr) return 0;
  if (conn->session_ != nullptr) SSL_SESSION_free(conn->session_);
  conn->session_ = session;
  return 1;  // the reference is ours now
}

// Connection's handshake-failure classification needs the ALPN marker.
HandshakeFailure classifyHandshakeFailure(SSL* ssl, int error) {
  if (error == SSL_ERROR_SYSCALL || error == SSL_ERROR_ZERO_RETURN) {
    return HandshakeFailure::kClosed;
  }
  if (SSL_get_ex_data(ssl, alpnFailedIndex()) != nullptr) return HandshakeFailure::kAlpn;
  const long verify = SSL_get_verify_result(ssl);
  if (verify == X509_V_ERR_APPLICATION_VERIFICATION || verify == X509_V_ERR_HOSTNAME_MISMATCH ||
      verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    return HandshakeFailure::kVerifySan;
  }
  if (verify != X509_V_OK) return HandshakeFailure::kVerify;
  const unsigned long e = ERR_peek_error();
  if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
      ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    return HandshakeFailure::kNoCertificate;
  }
  return HandshakeFailure::kProtocol;
}

}  // namespace sluice::tls
