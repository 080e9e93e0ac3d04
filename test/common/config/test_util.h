#pragma once

#include <map>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"
#include "common/config/diagnostic.h"
#include "common/config/loader.h"
#include "gmock/gmock.h"

namespace sluice::config {

// Failure messages show diagnostics as users see them.
inline void PrintTo(const Diagnostic& d, std::ostream* os) { *os << d.toString(); }

namespace testing {

// The name loadYaml gives its one file.
inline constexpr absl::string_view kTestFile = "test.yaml";

// Writes `files` (name -> content) into a fresh directory under $TEST_TMPDIR; returns its path.
std::string writeTempDir(const std::map<std::string, std::string>& files);

// loadFiles over one file named kTestFile. One leading newline is dropped so that a raw string
// literal can start on the line after its opening quote and still have its first line be line 1.
LoadResult loadYaml(absl::string_view yaml);

// Matches a diagnostic of kTestFile at `line` (0: any line) whose message contains `phrase`.
::testing::Matcher<const Diagnostic&> isDiagnostic(int line, absl::string_view kind,
                                                   absl::string_view resource,
                                                   absl::string_view field,
                                                   absl::string_view phrase);
// The same for a diagnostic of another file.
::testing::Matcher<const Diagnostic&> isDiagnosticIn(absl::string_view file, int line,
                                                     absl::string_view kind,
                                                     absl::string_view resource,
                                                     absl::string_view field,
                                                     absl::string_view phrase);

}  // namespace testing
}  // namespace sluice::config
