#include "test/common/config/test_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace sluice::config::testing {

using ::testing::AllOf;
using ::testing::Field;
using ::testing::HasSubstr;

std::string writeTempDir(const std::map<std::string, std::string>& files) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/config.XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << " failed";
    return pattern;
  }
  for (const auto& [name, content] : files) {
    std::ofstream out(absl::StrCat(pattern, "/", name), std::ios::binary);
    out << content;
    if (!out) ADD_FAILURE() << "cannot write " << name;
  }
  return pattern;
}

LoadResult loadYaml(absl::string_view yaml) {
  absl::ConsumePrefix(&yaml, "\n");
  return loadFiles({{std::string(kTestFile), std::string(yaml)}});
}

::testing::Matcher<const Diagnostic&> isDiagnostic(int line, absl::string_view kind,
                                                   absl::string_view resource,
                                                   absl::string_view field,
                                                   absl::string_view phrase) {
  return isDiagnosticIn(kTestFile, line, kind, resource, field, phrase);
}

::testing::Matcher<const Diagnostic&> isDiagnosticIn(absl::string_view file, int line,
                                                     absl::string_view kind,
                                                     absl::string_view resource,
                                                     absl::string_view field,
                                                     absl::string_view phrase) {
  ::testing::Matcher<int> line_matcher = ::testing::_;
  if (line > 0) line_matcher = line;
  return AllOf(Field("file", &Diagnostic::file, std::string(file)),
               Field("line", &Diagnostic::line, line_matcher),
               Field("kind", &Diagnostic::kind, std::string(kind)),
               Field("resource", &Diagnostic::resource, std::string(resource)),
               Field("field", &Diagnostic::field, std::string(field)),
               Field("message", &Diagnostic::message, HasSubstr(std::string(phrase))));
}

}  // namespace sluice::config::testing
