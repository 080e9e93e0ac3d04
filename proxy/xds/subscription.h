#pragma once

// Turns the ADS stream's per-type updates into whole config generations.
//
// The control plane sends each type on its own, referred-to kinds first (clusters, assignments,
// routes, listeners). For every update the subscription builds the candidate config: the newest
// received resources of each type, validates it with the shared validator, and hands a valid
// one to `apply` (which compiles it and binds sockets). Applied: every update that went into it
// is ACKed. Invalid: the update is NACKed with the validator's full message and dropped; the
// running generation stays. The one exception is a reference to a resource of another kind that
// is missing (a route naming a cluster the same push removes from the routes right after): such
// an update is held, neither applied nor answered, until a later update of another type makes
// the candidate valid, or until `hold_timeout` passes: then each held update that is invalid on
// its own (on top of the running config) is NACKed with its own message, and the rest are
// applied if together they are valid.
#include <array>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/config/config_set.h"
#include "proxy/stats/store.h"
#include "proxy/xds/ads_client.h"

struct event_base;
struct event;

namespace sluice::xds {

using Versions = std::array<std::string, config::kKindCount>;

// Where the subscription sends its answers (the AdsClient; a fake in tests).
class Answerer {
 public:
  virtual ~Answerer() = default;
  virtual void ack(const Update& update) = 0;
  virtual void nack(const Update& update, const std::string& running_version,
                    const std::string& message) = 0;
};

class Subscription {
 public:
  using ApplyFn = std::function<absl::Status(const config::ConfigSet& config, const Versions&)>;

  // Runs on `base` (the main loop). Declares its metrics in `store`, counting with `cells`.
  Subscription(event_base* base, Answerer* answerer, ApplyFn apply, stats::Store* store,
               stats::Cells* cells, absl::Duration hold_timeout = absl::Seconds(5));
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // An update from the stream (on the main loop).
  void onUpdate(Update update);
  // The stream ended: held updates can no longer be answered.
  void onDisconnected();

  // Every type has been applied at least once: the proxy has a complete config.
  bool complete() const;
  const Versions& versions() const { return applied_versions_; }
  // The last NACK's message (empty if none since the last applied update).
  const std::string& lastError() const { return last_error_; }

 private:
  struct TypeState {
    bool applied = false;
    std::vector<google::protobuf::Any> resources;  // of the running generation
    std::optional<Update> held;                    // received, not yet applied or answered
  };

  static void onHoldTimer(int, short, void* arg);
  void evaluate(config::Kind trigger);
  void nackHeld(const std::string& message);
  void reject(config::Kind kind, const Update& update, const std::string& message);
  // The running resources, with the held update of type `only_held` (-1: every held update).
  config::ConfigSet candidate(int only_held) const;

  Answerer* answerer_;
  ApplyFn apply_;
  stats::Cells* cells_;
  absl::Duration hold_timeout_;
  event* hold_timer_ = nullptr;
  std::array<TypeState, config::kKindCount> types_;
  Versions applied_versions_;
  std::string last_error_;
  std::array<stats::CounterId, config::kKindCount> applied_;
  std::array<stats::CounterId, config::kKindCount> rejected_;
};

// Decodes a type's resources into `out`; false with *error naming the bad resource.
bool decodeResources(config::Kind kind, const std::vector<google::protobuf::Any>& resources,
                     config::ConfigSet* out, std::string* error);

}  // namespace sluice::xds
