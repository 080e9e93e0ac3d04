#pragma once

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

// Line-oriented logging to stderr: "2026-11-23T10:00:00.123Z info control-plane: message".
// One write(2) per line, so lines from different threads never interleave.
namespace sluice::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Lines below `level` are dropped. Default kInfo.
void setLevel(Level level);
// "debug", "info", "warn" or "error"; false if `name` is none of them.
bool parseLevel(absl::string_view name, Level* level);
// The component name printed on every line (e.g. "sluice-cp").
void setComponent(absl::string_view component);
bool enabled(Level level);
void write(Level level, absl::string_view message);

template <class... Args>
void debug(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (enabled(Level::kDebug)) write(Level::kDebug, absl::StrFormat(format, args...));
}
template <class... Args>
void info(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (enabled(Level::kInfo)) write(Level::kInfo, absl::StrFormat(format, args...));
}
template <class... Args>
void warn(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (enabled(Level::kWarn)) write(Level::kWarn, absl::StrFormat(format, args...));
}
template <class... Args>
void error(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (enabled(Level::kError)) write(Level::kError, absl::StrFormat(format, args...));
}

}  // namespace sluice::log
