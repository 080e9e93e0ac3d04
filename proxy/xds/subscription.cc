#include "proxy/xds/subscription.h"

#include <event2/event.h>

#include "absl/strings/str_cat.h"
#include "common/config/validator.h"
#include "common/log/log.h"

namespace sluice::xds {
namespace v1 = config::v1;

namespace {

template <class T>
bool unpackAll(const std::vector<google::protobuf::Any>& resources, absl::string_view kind,
               std::vector<config::Sourced<T>>* out, std::string* error) {
  for (size_t i = 0; i < resources.size(); ++i) {
    config::Sourced<T> item;
    if (!resources[i].UnpackTo(&item.resource)) {
      *error = absl::StrCat(kind, " resource #", i, " (type '", resources[i].type_url(),
                            "') cannot be decoded as ", kind);
      return false;
    }
    item.origin.file = "xds";
    out->push_back(std::move(item));
  }
  return true;
}

}  // namespace

bool decodeResources(config::Kind kind, const std::vector<google::protobuf::Any>& resources,
                     config::ConfigSet* out, std::string* error) {
  const absl::string_view name = config::kindInfo(kind).name;
  switch (kind) {
    case config::Kind::kCluster:
      return unpackAll(resources, name, &out->clusters, error);
    case config::Kind::kClusterLoadAssignment:
      return unpackAll(resources, name, &out->assignments, error);
    case config::Kind::kConsumer:
      return unpackAll(resources, name, &out->consumers, error);
    case config::Kind::kRouteConfiguration:
      return unpackAll(resources, name, &out->route_configs, error);
    case config::Kind::kListener:
      return unpackAll(resources, name, &out->listeners, error);
  }
  return false;
}

Subscription::Subscription(event_base* base, Answerer* answerer, ApplyFn apply, stats::Store* store,
                           stats::Cells* cells, absl::Duration hold_timeout)
    : answerer_(answerer), apply_(std::move(apply)), cells_(cells), hold_timeout_(hold_timeout) {
  hold_timer_ = evtimer_new(base, &Subscription::onHoldTimer, this);
  for (int k = 0; k < config::kKindCount; ++k) {
    const stats::Labels labels = {
        {"type", std::string(config::kindInfo(static_cast<config::Kind>(k)).name)}};
    applied_[k] = store->counter("sluice_xds_update_applied_total",
                                 "Config updates applied (ACKed), by resource type.", labels);
    rejected_[k] = store->counter("sluice_xds_update_rejected_total",
                                  "Config updates rejected (NACKed), by resource type.", labels);
  }
}

Subscription::~Subscription() { event_free(hold_timer_); }

bool Subscription::complete() const {
  for (const TypeState& t : types_) {
    if (!t.applied) return false;
  }
  return true;
}

void Subscription::onUpdate(Update update) {
  const config::Kind kind = update.kind;
  TypeState& t = types_[static_cast<int>(kind)];
  // A newer update of a type supersedes a held one; the server ignores answers to old nonces.
  t.held = std::move(update);
  evaluate(kind);
}

void Subscription::onDisconnected() {
  for (TypeState& t : types_) t.held.reset();
  evtimer_del(hold_timer_);
}

void Subscription::evaluate(config::Kind trigger) {
  config::ConfigSet candidate;
  Versions versions = applied_versions_;
  for (int k = 0; k < config::kKindCount; ++k) {
    TypeState& t = types_[k];
    const auto kind = static_cast<config::Kind>(k);
    const std::vector<google::protobuf::Any>& resources =
        t.held.has_value() ? t.held->resources : t.resources;
    std::string error;
    if (!decodeResources(kind, resources, &candidate, &error)) {
      // Only a held update can be undecodable: what runs was decoded before.
      Update bad = *std::move(t.held);
      t.held.reset();
      reject(kind, bad, error);
      return;
    }
    if (t.held.has_value()) versions[k] = t.held->version;
  }

  config::Diagnostics errors = config::validateConfig(candidate);
  bool only_dangling = !errors.empty();
  for (const config::Diagnostic& d : errors) only_dangling = only_dangling && d.dangling_reference;
  if (only_dangling) {
    // Wait for the type that resolves the reference (see the header). The first held update
    // bounds the wait; later ones do not extend it.
    if (!evtimer_pending(hold_timer_, nullptr)) {
      timeval tv = absl::ToTimeval(hold_timeout_);
      evtimer_add(hold_timer_, &tv);
    }
    log::debug("holding %s update: %s", config::kindInfo(trigger).name,
               config::formatDiagnostics(errors));
    return;
  }
  absl::Status status;
  if (errors.empty()) {
    status = apply_(candidate, versions);
  } else {
    status = absl::InvalidArgumentError(config::formatDiagnostics(errors));
  }
  if (!status.ok()) {
    // The update that triggered the evaluation is the one rejected; others stay held.
    TypeState& t = types_[static_cast<int>(trigger)];
    if (t.held.has_value()) {
      Update bad = *std::move(t.held);
      t.held.reset();
      reject(trigger, bad, std::string(status.message()));
    }
    bool any_held = false;
    for (const TypeState& s : types_) any_held = any_held || s.held.has_value();
    if (!any_held) evtimer_del(hold_timer_);
    return;
  }
  evtimer_del(hold_timer_);
  last_error_.clear();
  applied_versions_ = versions;
  for (int k = 0; k < config::kKindCount; ++k) {
    TypeState& t = types_[k];
    if (!t.held.has_value()) continue;
    Update done = *std::move(t.held);
    t.held.reset();
    t.resources = std::move(done.resources);
    t.applied = true;
    cells_->add(applied_[k]);
    log::info("applied %s version %s", config::kindInfo(static_cast<config::Kind>(k)).name,
              done.version);
    answerer_->ack(done);
  }
}

void Subscription::reject(config::Kind kind, const Update& update, const std::string& message) {
  const int k = static_cast<int>(kind);
  cells_->add(rejected_[k]);
  last_error_ = message;
  log::warn("rejecting %s version %s: %s", config::kindInfo(kind).name, update.version, message);
  answerer_->nack(update, applied_versions_[k], message);
}

void Subscription::nackHeld(const std::string& message) {
  for (int k = 0; k < config::kKindCount; ++k) {
    TypeState& t = types_[k];
    if (!t.held.has_value()) continue;
    Update bad = *std::move(t.held);
    t.held.reset();
    reject(static_cast<config::Kind>(k), bad, message);
  }
}

config::ConfigSet Subscription::candidate(int only_held) const {
  config::ConfigSet out;
  for (int k = 0; k < config::kKindCount; ++k) {
    const TypeState& t = types_[k];
    const bool use_held = t.held.has_value() && (only_held < 0 || only_held == k);
    std::string ignored;  // held updates were decoded once already
    decodeResources(static_cast<config::Kind>(k), use_held ? t.held->resources : t.resources, &out,
                    &ignored);
  }
  return out;
}

void Subscription::onHoldTimer(int, short, void* arg) {
  auto* self = static_cast<Subscription*>(arg);
  // The updates that leave a reference dangling on their own (on top of what runs) are the
  // ones the awaited update never came for: reject those, with their own messages.
  for (int k = 0; k < config::kKindCount; ++k) {
    TypeState& t = self->types_[k];
    if (!t.held.has_value()) continue;
    config::Diagnostics errors = config::validateConfig(self->candidate(k));
    if (errors.empty()) continue;
    Update bad = *std::move(t.held);
    t.held.reset();
    self->reject(static_cast<config::Kind>(k), bad, config::formatDiagnostics(errors));
  }
  // The others were held only for company: apply them if together they are valid.
  int first = -1;
  for (int k = 0; k < config::kKindCount && first < 0; ++k) {
    if (self->types_[k].held.has_value()) first = k;
  }
  if (first < 0) return;
  config::Diagnostics errors = config::validateConfig(self->candidate(-1));
  if (!errors.empty()) {
    self->nackHeld(config::formatDiagnostics(errors));
    return;
  }
  self->evaluate(static_cast<config::Kind>(first));
}

}  // namespace sluice::xds
