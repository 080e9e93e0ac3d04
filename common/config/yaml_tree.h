#pragma once

// YAML documents as plain values, built in one pass from yaml-cpp's parser events. yaml-cpp's
// own YAML::Node (reference-counted nodes, a node set per document, built after a first pass
// that guards against a parser bug) made loading a file of 10,000 routes take most of a second;
// this keeps yaml-cpp's parser and its errors and drops its node graph.
#include <deque>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sluice::config {

class YamlNode {
 public:
  enum class Type { kNull, kScalar, kSequence, kMap };

  Type type() const { return type_; }
  bool isNull() const { return type_ == Type::kNull; }
  bool isScalar() const { return type_ == Type::kScalar; }
  bool isSequence() const { return type_ == Type::kSequence; }
  bool isMap() const { return type_ == Type::kMap; }
  // 1-based line where the node starts; 0 when unknown.
  int line() const { return line_; }
  // 1-based column where the node starts; 0 when unknown.
  int column() const { return column_; }
  const std::string& scalar() const { return scalar_; }
  // A sequence's items, or a map's keys and values alternating (key, value, key, value ...), in
  // document order; a key may repeat. An alias is the node it names, so a node may be a child of
  // several (or of itself).
  const std::vector<const YamlNode*>& children() const { return children_; }
  // The value of the first scalar key `key` of a map; nullptr if none or not a map.
  const YamlNode* find(absl::string_view key) const;

 private:
  friend class YamlTreeBuilder;
  Type type_ = Type::kNull;
  int line_ = 0;
  int column_ = 0;
  std::string scalar_;
  std::vector<const YamlNode*> children_;
};

// The documents of one YAML text; owns their nodes.
struct YamlDocuments {
  std::deque<YamlNode> nodes;              // never moved: nodes point at each other
  std::vector<const YamlNode*> documents;  // an empty document is a null node
};

// Parses every document of `text`. Throws what yaml-cpp's parser throws (YAML::ParserException,
// YAML::DeepRecursion ...) on invalid YAML, and YAML::ParserException where yaml-cpp 0.7's
// LoadAll would loop forever (jbeder/yaml-cpp#1040).
YamlDocuments parseYaml(const std::string& text);

}  // namespace sluice::config
