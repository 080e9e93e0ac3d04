// docs/config-reference.md is checked against the protos: every config message, field and enum
// value is documented, and the document names no field that does not exist.
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "sluice/config/v1/cluster.pb.h"
#include "sluice/config/v1/consumer.pb.h"
#include "sluice/config/v1/listener.pb.h"
#include "sluice/config/v1/route.pb.h"

namespace sluice::docs {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;

std::string readDoc() {
  std::ifstream in("docs/config-reference.md");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The lines under the heading "## name" or "### name", up to the next heading.
std::vector<std::string> section(const std::string& doc, const std::string& name) {
  std::vector<std::string> out;
  bool in = false;
  for (absl::string_view line : absl::StrSplit(doc, '\n')) {
    if (absl::StartsWith(line, "#")) {
      absl::string_view title = line.substr(line.find_first_not_of('#'));
      in = title == absl::StrCat(" ", name);
      continue;
    }
    if (in) out.emplace_back(line);
  }
  return out;
}

// Names in the first column of the section's table rows: "| `name` | ...".
std::set<std::string> tableNames(const std::vector<std::string>& lines) {
  std::set<std::string> names;
  for (const std::string& line : lines) {
    if (!absl::StartsWith(line, "| `")) continue;
    size_t end = line.find('`', 3);
    if (end != std::string::npos) names.insert(line.substr(3, end - 3));
  }
  return names;
}

void collect(const Descriptor* d, std::set<const Descriptor*>* messages,
             std::set<const EnumDescriptor*>* enums) {
  if (d->file()->package() != "sluice.config.v1" || !messages->insert(d).second) return;
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->message_type()) collect(d->field(i)->message_type(), messages, enums);
    if (d->field(i)->enum_type()) enums->insert(d->field(i)->enum_type());
  }
}

TEST(ConfigReferenceTest, DocumentsEveryFieldAndNothingElse) {
  std::string doc = readDoc();
  ASSERT_FALSE(doc.empty()) << "docs/config-reference.md not found";
  std::set<const Descriptor*> messages;
  std::set<const EnumDescriptor*> enums;
  for (const Descriptor* root :
       {config::v1::Listener::descriptor(), config::v1::RouteConfiguration::descriptor(),
        config::v1::Cluster::descriptor(), config::v1::ClusterLoadAssignment::descriptor(),
        config::v1::Consumer::descriptor()}) {
    collect(root, &messages, &enums);
  }
  EXPECT_GE(messages.size(), 15u);  // the walk found the tree
  for (const Descriptor* m : messages) {
    std::vector<std::string> lines = section(doc, m->name());
    ASSERT_FALSE(lines.empty()) << "no section for message " << m->name();
    std::set<std::string> documented = tableNames(lines);
    std::set<std::string> fields;
    for (int i = 0; i < m->field_count(); ++i) fields.insert(m->field(i)->name());
    for (const std::string& f : fields) {
      EXPECT_TRUE(documented.count(f)) << m->name() << "." << f << " is not documented";
    }
    for (const std::string& f : documented) {
      EXPECT_TRUE(fields.count(f)) << m->name() << " documents '" << f << "', not in the proto";
    }
  }
  for (const EnumDescriptor* e : enums) {
    std::set<std::string> documented = tableNames(section(doc, e->name()));
    for (int i = 0; i < e->value_count(); ++i) {
      EXPECT_TRUE(documented.count(e->value(i)->name()))
          << e->name() << "." << e->value(i)->name() << " is not documented";
    }
    EXPECT_EQ(documented.size(), static_cast<size_t>(e->value_count())) << e->name();
  }
}

}  // namespace
}  // namespace sluice::docs
