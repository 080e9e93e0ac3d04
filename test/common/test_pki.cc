#include "test/common/test_pki.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "test/integration/process.h"

namespace sluice::testing {
namespace {

constexpr char kOpenssl[] = "/usr/bin/openssl";

// The request settings (the subject comes from -subj) and the two extension sections.
constexpr char kConfig[] = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
)";

absl::Status openssl(const std::vector<std::string>& args) {
  RunResult r = run(kOpenssl, args);
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("openssl ", args[0], " failed: ", r.err));
  }
  return absl::OkStatus();
}

std::vector<std::string> newKey(const TestPki& pki, const std::string& name) {
  return {"-newkey", "ec",          "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", pki.key(name), "-config",  pki.dir + "/openssl.cnf"};
}

absl::Status makeCa(const TestPki& pki, const std::string& name, const std::string& subject) {
  std::vector<std::string> args = {"req",    "-x509", "-new",        "-days",
                                   "2",      "-subj", subject,       "-extensions",
                                   "ca_ext", "-out",  pki.cert(name)};
  for (std::string& a : newKey(pki, name)) args.push_back(std::move(a));
  return openssl(args);
}

}  // namespace

std::string TestPki::cert(const std::string& name) const {
  return absl::StrCat(dir, "/", name, ".pem");
}
std::string TestPki::key(const std::string& name) const {
  return absl::StrCat(dir, "/", name, ".key");
}

absl::Status issueCertificate(const TestPki& pki, const std::string& name,
                              const std::string& subject, const std::string& sans,
                              const std::string& ca) {
  static std::atomic<int> serial{1000};
  const std::string csr = absl::StrCat(pki.dir, "/", name, ".csr");
  const std::string ext = absl::StrCat(pki.dir, "/", name, ".ext");
  writeFile(ext,
            absl::StrCat("[leaf]\nbasicConstraints = CA:FALSE\nsubjectAltName = ", sans, "\n"));
  std::vector<std::string> req = {"req", "-new", "-subj", subject, "-out", csr};
  for (std::string& a : newKey(pki, name)) req.push_back(std::move(a));
  if (absl::Status s = openssl(req); !s.ok()) return s;
  return openssl({"x509", "-req", "-in", csr, "-CA", pki.cert(ca), "-CAkey", pki.key(ca),
                  "-set_serial", absl::StrCat(serial.fetch_add(1)), "-days", "2", "-extfile", ext,
                  "-extensions", "leaf", "-out", pki.cert(name)});
}

absl::StatusOr<TestPki> makeTestPki(const std::string& dir) {
  TestPki pki{dir};
  writeFile(dir + "/openssl.cnf", kConfig);
  if (absl::Status s = makeCa(pki, "ca", "/CN=Sluice Test CA"); !s.ok()) return s;
  if (absl::Status s = makeCa(pki, "other-ca", "/CN=Other Test CA"); !s.ok()) return s;
  struct Leaf {
    const char* name;
    const char* subject;
    const char* sans;
    const char* ca;
  };
  const Leaf leaves[] = {
      {"a", "/CN=a.test", "DNS:a.test", "ca"},
      {"b", "/CN=b.test", "DNS:b.test,DNS:*.b.test", "ca"},
      {"upstream", "/CN=upstream.test", "DNS:upstream.test,IP:127.0.0.1", "ca"},
      {"client", "/O=Sluice Test/CN=client",
       "DNS:client.test,URI:spiffe://sluice.test/client,email:client@sluice.test", "ca"},
      {"other-client", "/CN=other-client", "DNS:client.test", "other-ca"},
  };
  for (const Leaf& l : leaves) {
    if (absl::Status s = issueCertificate(pki, l.name, l.subject, l.sans, l.ca); !s.ok()) {
      return s;
    }
  }
  return pki;
}

}  // namespace sluice::testing
