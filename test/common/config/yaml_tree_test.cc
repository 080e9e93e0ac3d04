// The YAML tree the loader converts from: what yaml-cpp's YAML::Node gave it, built in one pass.
#include "common/config/yaml_tree.h"

#include "gtest/gtest.h"
#include "yaml-cpp/exceptions.h"

namespace sluice::config {
namespace {

TEST(YamlTreeTest, MappingsKeepOrderLinesAndRepeatedKeys) {
  YamlDocuments yaml = parseYaml("kind: Cluster\nname: a\nname: b\nendpoints:\n  - x\n  - y\n");
  ASSERT_EQ(yaml.documents.size(), 1);
  const YamlNode& doc = *yaml.documents[0];
  ASSERT_TRUE(doc.isMap());
  ASSERT_EQ(doc.children().size(), 8);  // four keys, four values
  EXPECT_EQ(doc.children()[2]->scalar(), "name");
  EXPECT_EQ(doc.children()[3]->scalar(), "a");
  EXPECT_EQ(doc.children()[5]->scalar(), "b");
  EXPECT_EQ(doc.children()[5]->line(), 3);
  EXPECT_EQ(doc.find("name")->scalar(), "a");  // the first of a repeated key
  EXPECT_EQ(doc.find("missing"), nullptr);
  const YamlNode* endpoints = doc.find("endpoints");
  ASSERT_TRUE(endpoints->isSequence());
  ASSERT_EQ(endpoints->children().size(), 2);
  EXPECT_EQ(endpoints->children()[1]->scalar(), "y");
  EXPECT_EQ(endpoints->children()[1]->line(), 6);
  EXPECT_EQ(endpoints->children()[1]->column(), 5);
}

TEST(YamlTreeTest, NullsAndEmptyDocuments) {
  YamlDocuments yaml = parseYaml("a:\nb: ~\nc: null\nd: ''\n---\n---\n- 1\n");
  ASSERT_EQ(yaml.documents.size(), 3);
  const YamlNode& first = *yaml.documents[0];
  EXPECT_TRUE(first.find("a")->isNull());
  EXPECT_TRUE(first.find("b")->isNull());
  EXPECT_TRUE(first.find("c")->isNull());
  EXPECT_TRUE(first.find("d")->isScalar());  // quoted: an empty string, not null
  EXPECT_TRUE(yaml.documents[1]->isNull());
  EXPECT_TRUE(yaml.documents[2]->isSequence());
}

TEST(YamlTreeTest, AnAliasIsTheNodeItNames) {
  YamlDocuments yaml = parseYaml("a: &x {k: v}\nb: *x\nc: &s [1, *s]\n");
  const YamlNode& doc = *yaml.documents[0];
  EXPECT_EQ(doc.find("a"), doc.find("b"));
  const YamlNode* c = doc.find("c");
  ASSERT_EQ(c->children().size(), 2);
  EXPECT_EQ(c->children()[1], c);  // a sequence that contains itself
}

TEST(YamlTreeTest, InvalidYamlThrowsYamlCppsErrors) {
  EXPECT_THROW(parseYaml("a: [1, 2\n"), YAML::ParserException);
  EXPECT_THROW(parseYaml("a: *unknown\n"), YAML::ParserException);
  // yaml-cpp 0.7's LoadAll loops for ever on this one.
  EXPECT_THROW(parseYaml(",\n"), YAML::ParserException);
}

}  // namespace
}  // namespace sluice::config
