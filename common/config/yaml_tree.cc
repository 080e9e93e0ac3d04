#include "common/config/yaml_tree.h"

#include <sstream>

#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/exceptions.h"
#include "yaml-cpp/mark.h"
#include "yaml-cpp/parser.h"

namespace sluice::config {

const YamlNode* YamlNode::find(absl::string_view key) const {
  if (type_ != Type::kMap) return nullptr;
  for (size_t i = 0; i + 1 < children_.size(); i += 2) {
    if (children_[i]->isScalar() && children_[i]->scalar() == key) return children_[i + 1];
  }
  return nullptr;
}

// Builds nodes from parser events as yaml-cpp's NodeBuilder does: a null or scalar joins the
// open collection, a collection joins it and opens, an alias joins it as the node its anchor
// named (anchors are registered when their node starts, so a collection may contain itself).
class YamlTreeBuilder : public YAML::EventHandler {
 public:
  explicit YamlTreeBuilder(YamlDocuments* out) : out_(out) {}

  // Whether the last document started where the one before it did: yaml-cpp 0.7 then keeps
  // returning empty documents at that place for ever (jbeder/yaml-cpp#1040).
  bool stalled() const { return stalled_; }
  const YAML::Mark& lastStart() const { return last_start_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    stalled_ = started_ && mark.pos == last_start_.pos;
    started_ = true;
    last_start_ = mark;
    root_ = nullptr;
    open_.clear();
    anchors_.clear();
  }
  void OnDocumentEnd() override {
    out_->documents.push_back(root_ != nullptr ? root_ : &out_->nodes.emplace_back());
  }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    add(node(YamlNode::Type::kNull, mark), anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    // The parser rejects unknown anchors; a null stands in should one get through.
    YamlNode* target = anchor < anchors_.size() ? anchors_[anchor] : nullptr;
    add(target != nullptr ? target : node(YamlNode::Type::kNull, mark), YAML::NullAnchor);
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    YamlNode* n = node(YamlNode::Type::kScalar, mark);
    n->scalar_ = value;
    add(n, anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(node(YamlNode::Type::kSequence, mark), anchor);
  }
  void OnSequenceEnd() override { open_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(node(YamlNode::Type::kMap, mark), anchor);
  }
  void OnMapEnd() override { open_.pop_back(); }

 private:
  YamlNode* node(YamlNode::Type type, const YAML::Mark& mark) {
    YamlNode& n = out_->nodes.emplace_back();
    n.type_ = type;
    n.line_ = mark.line >= 0 ? mark.line + 1 : 0;
    n.column_ = mark.column >= 0 ? mark.column + 1 : 0;
    return &n;
  }

  void add(YamlNode* n, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) {
      if (anchor >= anchors_.size()) anchors_.resize(anchor + 1, nullptr);
      anchors_[anchor] = n;
    }
    if (open_.empty()) {
      root_ = n;
    } else {
      open_.back()->children_.push_back(n);
    }
  }

  void open(YamlNode* n, YAML::anchor_t anchor) {
    add(n, anchor);
    open_.push_back(n);
  }

  YamlDocuments* out_;
  YamlNode* root_ = nullptr;
  std::vector<YamlNode*> open_;
  std::vector<YamlNode*> anchors_;  // by anchor id, numbered from 1 in each document
  bool started_ = false;
  bool stalled_ = false;
  YAML::Mark last_start_;
};

YamlDocuments parseYaml(const std::string& text) {
  YamlDocuments out;
  std::istringstream in(text);
  YAML::Parser parser(in);
  YamlTreeBuilder builder(&out);
  while (parser.HandleNextDocument(builder)) {
    if (builder.stalled()) {
      throw YAML::ParserException(builder.lastStart(),
                                  "unexpected token at the start of a document");
    }
  }
  return out;
}

}  // namespace sluice::config
