#pragma once

// A throwaway PKI for TLS tests, made with the openssl CLI in a temporary directory when a test
// starts: no key is ever committed. Keys are ECDSA P-256 (fast to make), certificates valid for
// two days.
#include <string>

#include "absl/status/statusor.h"

namespace sluice::testing {

// The files, NAME.pem (certificate) and NAME.key (private key), for these NAMEs:
//   ca            a root CA ("CN=Sluice Test CA")
//   a             server, signed by ca: subjectAltName DNS:a.test
//   b             server, signed by ca: DNS:b.test, DNS:*.b.test
//   upstream      server, signed by ca: DNS:upstream.test, IP:127.0.0.1
//   client        client, signed by ca: "CN=client,O=Sluice Test"; DNS:client.test,
//                 URI:spiffe://sluice.test/client, email:client@sluice.test
//   other-ca      another root CA
//   other-client  client, signed by other-ca: "CN=other-client"; DNS:client.test
struct TestPki {
  std::string dir;
  // dir/NAME.pem and dir/NAME.key.
  std::string cert(const std::string& name) const;
  std::string key(const std::string& name) const;
};

absl::StatusOr<TestPki> makeTestPki(const std::string& dir);

// Issues another certificate NAME signed by CA ("ca" or "other-ca"), with subject `subject`
// ("/CN=x") and subjectAltName `sans` ("DNS:a.test,IP:127.0.0.1").
absl::Status issueCertificate(const TestPki& pki, const std::string& name,
                              const std::string& subject, const std::string& sans,
                              const std::string& ca = "ca");

}  // namespace sluice::testing
