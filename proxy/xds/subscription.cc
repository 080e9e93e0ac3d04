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
      cells_->add(rejected_[k]);
      last_error_ = error;
      log::warn("rejecting %s version %s: %s", config::kindInfo(kind).name, bad.version, error);
      answerer_->nack(bad, applied_versions_[k], error);
      if (k != static_cast<int>(trigger)) continue;
      return;
    }
    if (t.held.has_value()) versions[k] = t.held->version;
  }

  config::Diagnostics errors = config::validateConfig(candidate);
  bool only_dangling = !errors.empty();
  for (const config::Diagnostic& d : errors) only_dangling = only_dangling && d.dangling_reference;
  if (only_dangling) {
    // Wait for the type that resolves the reference (see the header).
    // The first held update bounds the wait; later ones do not extend it.
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
      cells_->add(rejected_[static_cast<int>(trigger)]);
      last_error_ = std::string(status.message());
      log::warn("rejecting %s version %s: %s", config::kindInfo(trigger).name, bad.version,
                last_error_);
      answerer_->nack(bad, applied_versions_[static_cast<int>(trigger)], last_error_);
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

void Subscription::nackHeld(const std::string& message) {
  for (int k = 0; k < config::kKindCount; ++k) {
    TypeState& t = types_[k];
    if (!t.held.has_value()) continue;
    Update bad = *std::move(t.held);
    t.held.reset();
    cells_->add(rejected_[k]);
    last_error_ = message;
    log::warn("rejecting %s version %s: %s", config::kindInfo(static_cast<config::Kind>(k)).name,
              bad.version, message);
    answerer_->nack(bad, applied_versions_[k], message);
  }
}

void Subscription::onHoldTimer(int, short, void* arg) {
  auto* self = static_cast<Subscription*>(arg);
  config::ConfigSet candidate;
  for (int k = 0; k < config::kKindCount; ++k) {
    const TypeState& t = self->types_[k];
    std::string ignored;
    decodeResources(static_cast<config::Kind>(k), t.held ? t.held->resources : t.resources,
                    &candidate, &ignored);
  }
  self->nackHeld(config::formatDiagnostics(config::validateConfig(candidate)));
}

}  // namespace sluice::xds
