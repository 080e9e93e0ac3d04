#include "proxy/filters/jwt_authn/json.h"

#include <string>

#include "google/protobuf/util/json_util.h"

namespace sluice::jwt_authn {
namespace {

// A recursive-descent recognizer of RFC 8259 JSON; recursion is bounded by max_depth.
class Checker {
 public:
  Checker(std::string_view text, int max_depth) : text_(text), max_depth_(max_depth) {}

  bool objectDocument() {
    skipSpace();
    if (peek() != '{' || !value(0)) return false;
    skipSpace();
    return pos_ == text_.size();
  }

 private:
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool eat(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  void skipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  static bool isDigit(char c) { return c >= '0' && c <= '9'; }
  static bool isHex(char c) {
    return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }

  bool value(int depth) {
    skipSpace();
    switch (peek()) {
      case '{':
        return object(depth + 1);
      case '[':
        return array(depth + 1);
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }

  bool object(int depth) {
    if (depth > max_depth_) return false;
    ++pos_;  // '{'
    skipSpace();
    if (eat('}')) return true;
    while (true) {
      skipSpace();
      if (!string()) return false;
      skipSpace();
      if (!eat(':') || !value(depth)) return false;
      skipSpace();
      if (eat('}')) return true;
      if (!eat(',')) return false;
    }
  }

  bool array(int depth) {
    if (depth > max_depth_) return false;
    ++pos_;  // '['
    skipSpace();
    if (eat(']')) return true;
    while (true) {
      if (!value(depth)) return false;
      skipSpace();
      if (eat(']')) return true;
      if (!eat(',')) return false;
    }
  }

  bool string() {
    if (!eat('"')) return false;
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') continue;
      if (pos_ >= text_.size()) return false;
      const char e = text_[pos_++];
      if (e == 'u') {
        if (text_.size() - pos_ < 4) return false;
        for (int i = 0; i < 4; ++i) {
          if (!isHex(text_[pos_++])) return false;
        }
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }

  bool number() {
    eat('-');
    // A leading zero stands alone: "01" leaves "1" for the caller to refuse.
    if (!eat('0') && !digits()) return false;
    if (eat('.') && !digits()) return false;
    if (eat('e') || eat('E')) {
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    return true;
  }

  bool digits() {
    const size_t start = pos_;
    while (pos_ < text_.size() && isDigit(text_[pos_])) ++pos_;
    return pos_ > start;
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  int max_depth_;
};

}  // namespace

bool parseJsonObject(std::string_view json, int max_depth, google::protobuf::Struct* out) {
  if (!Checker(json, max_depth).objectDocument()) return false;
  return google::protobuf::util::JsonStringToMessage(
             google::protobuf::StringPiece(json.data(), json.size()), out)
      .ok();
}

}  // namespace sluice::jwt_authn
