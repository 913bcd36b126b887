#include "webexec/future_collection.hpp"

#include <atomic>
#include <stdexcept>
#include <utility>

#include "webexec/detail/demangle.hpp"
#include "webexec/errors.hpp"

namespace webexec {

struct FutureCollection::Entry {
  std::string key;
  AnyFuture future;
  ResultRenderer render = nullptr;
  std::shared_ptr<detail::ProgressSlot> progress;
  // Completion time in steady-clock ticks, 0 until done; set by a callback.
  std::atomic<Clock::rep> finished_at{0};

  [[nodiscard]] bool expired(Clock::time_point now,
                             const std::optional<Clock::duration>& ttl) const {
    const Clock::rep at = finished_at.load(std::memory_order_acquire);
    return ttl && at != 0 && now - Clock::time_point(Clock::duration(at)) >= *ttl;
  }
};

namespace {

/// Stamps an entry's completion time (for the TTL).
class FinishedAt final : public detail::CallbackNode {
 public:
  explicit FinishedAt(const std::shared_ptr<FutureCollection::Entry>& entry) : entry_(entry) {}
  void invoke(detail::StateBase& /*state*/) noexcept override;

 private:
  std::weak_ptr<FutureCollection::Entry> entry_;
};

void check_max_length(std::size_t max_length) {
  if (max_length == 0) {
    throw std::invalid_argument("FutureCollection max_length must be at least 1, got 0");
  }
}

}  // namespace

void FinishedAt::invoke(detail::StateBase& /*state*/) noexcept {
  if (auto e = entry_.lock()) {
    e->finished_at.store(FutureCollection::Clock::now().time_since_epoch().count(),
                         std::memory_order_release);
  }
}

FutureCollection::FutureCollection(std::size_t max_length) : max_length_(max_length) {
  check_max_length(max_length);
}

FutureCollection::~FutureCollection() = default;

std::size_t FutureCollection::max_length() const {
  const detail::MutexLock lock(mutex_);
  return max_length_;
}

void FutureCollection::set_max_length(std::size_t max_length) {
  check_max_length(max_length);
  const detail::MutexLock lock(mutex_);
  max_length_ = max_length;
}

void FutureCollection::set_ttl(std::optional<Clock::duration> ttl) {
  const detail::MutexLock lock(mutex_);
  ttl_ = ttl;
}

std::optional<FutureCollection::Clock::duration> FutureCollection::ttl() const {
  const detail::MutexLock lock(mutex_);
  return ttl_;
}

void FutureCollection::purge_expired_locked(Clock::time_point now) {
  if (!ttl_) return;
  for (auto it = order_.begin(); it != order_.end();) {
    if ((*it)->expired(now, ttl_)) {
      index_.erase((*it)->key);
      it = order_.erase(it);
    } else {
      ++it;
    }
  }
}

void FutureCollection::add(std::string key, AnyFuture future, ResultRenderer render,
                           std::shared_ptr<detail::ProgressSlot> progress) {
  if (!future.valid()) throw std::invalid_argument("cannot store an empty future");
  add_checked(std::move(key), [&] { return Stored{future, render, progress}; });
}

void FutureCollection::add_checked(std::string key, const std::function<Stored()>& make) {
  // Everything the entry needs is allocated first, so that once `make()` has
  // submitted the task, storing it cannot fail: a list node (spliced in
  // later), an index node (inserted later into buckets reserved now), and
  // the completion stamp.
  auto entry = std::make_shared<Entry>();
  entry->key = key;
  List pending;
  pending.push_back(entry);
  auto stamp = std::make_unique<FinishedAt>(entry);
  decltype(index_)::node_type index_node;
  {
    decltype(index_) one;
    one.emplace(key, pending.begin());
    index_node = one.extract(one.begin());
  }
  {
    const detail::MutexLock lock(mutex_);
    purge_expired_locked(Clock::now());
    if (index_.count(key) != 0 || reserved_.count(key) != 0) {
      throw std::invalid_argument("future_key '" + key + "' already exists");
    }
    while (order_.size() + reserved_.size() >= max_length_) {
      auto victim = order_.begin();
      while (victim != order_.end() && !(*victim)->future.done()) ++victim;
      if (victim == order_.end()) {
        throw CapacityError("cannot store future_key '" + key + "': the collection holds " +
                            std::to_string(order_.size() + reserved_.size()) +
                            " futures (max_length " + std::to_string(max_length_) +
                            ") and none has finished; pop finished futures or raise "
                            "EXECUTOR_FUTURES_MAX_LENGTH");
      }
      index_.erase((*victim)->key);
      order_.erase(victim);
    }
    // Room for every entry being added, so inserting ours cannot rehash.
    index_.reserve(index_.size() + reserved_.size() + 1);
    reserved_.insert(key);
  }
  // Submitted without the lock: a submit that fails may run the task's done
  // callbacks inline (it cancels the task), and no user callback runs under
  // a library lock.
  Stored stored;
  try {
    stored = make();
  } catch (...) {
    const detail::MutexLock lock(mutex_);
    reserved_.erase(key);
    throw;
  }
  entry->future = std::move(stored.future);
  entry->render = stored.render;
  entry->progress = std::move(stored.progress);
  {
    const detail::MutexLock lock(mutex_);
    reserved_.erase(key);
    order_.splice(order_.end(), pending);
    index_.insert(std::move(index_node));
  }
  // Record the completion time for the TTL; runs at once if already done.
  // A raw node: bookkeeping must not run in the task's context.
  state_of(entry->future)->add_callback(stamp.release());
}

std::shared_ptr<FutureCollection::Entry> FutureCollection::find(std::string_view key) const {
  const detail::MutexLock lock(mutex_);
  const auto it = index_.find(std::string(key));
  if (it == index_.end()) return nullptr;
  if ((*it->second)->expired(Clock::now(), ttl_)) return nullptr;
  return *it->second;
}

std::optional<AnyFuture> FutureCollection::pop(std::string_view key) {
  const detail::MutexLock lock(mutex_);
  purge_expired_locked(Clock::now());
  const auto it = index_.find(std::string(key));
  if (it == index_.end()) return std::nullopt;
  AnyFuture out = (*it->second)->future;
  order_.erase(it->second);
  index_.erase(it);
  return out;
}

std::optional<FutureCollection::Polled> FutureCollection::pop_if_done(std::string_view key) {
  const detail::MutexLock lock(mutex_);
  purge_expired_locked(Clock::now());
  const auto it = index_.find(std::string(key));
  if (it == index_.end()) return std::nullopt;
  Polled out{.state = (*it->second)->future.state(), .future = std::nullopt};
  if (out.state == FutureState::finished || out.state == FutureState::cancelled) {
    out.future = (*it->second)->future;
    order_.erase(it->second);
    index_.erase(it);
  }
  return out;
}

std::optional<AnyFuture> FutureCollection::get(std::string_view key) const {
  auto e = find(key);
  if (!e) return std::nullopt;
  return e->future;
}

bool FutureCollection::contains(std::string_view key) const { return find(key) != nullptr; }

std::vector<std::string> FutureCollection::keys() const {
  const detail::MutexLock lock(mutex_);
  const auto now = Clock::now();
  std::vector<std::string> out;
  for (const auto& e : order_) {
    if (!e->expired(now, ttl_)) out.push_back(e->key);
  }
  return out;
}

std::size_t FutureCollection::size() const {
  const detail::MutexLock lock(mutex_);
  const auto now = Clock::now();
  std::size_t n = 0;
  for (const auto& e : order_) n += e->expired(now, ttl_) ? 0U : 1U;
  return n;
}

std::optional<bool> FutureCollection::done(std::string_view key) const {
  auto e = find(key);
  if (!e) return std::nullopt;
  return e->future.done();
}

std::optional<bool> FutureCollection::running(std::string_view key) const {
  auto e = find(key);
  if (!e) return std::nullopt;
  return e->future.running();
}

std::optional<bool> FutureCollection::cancelled(std::string_view key) const {
  auto e = find(key);
  if (!e) return std::nullopt;
  return e->future.cancelled();
}

std::optional<FutureState> FutureCollection::state(std::string_view key) const {
  auto e = find(key);
  if (!e) return std::nullopt;
  return e->future.state();
}

std::optional<bool> FutureCollection::cancel(std::string_view key) {
  auto e = find(key);
  if (!e) return std::nullopt;
  return e->future.cancel();
}

std::optional<std::exception_ptr> FutureCollection::exception(std::string_view key,
                                                              Timeout timeout) const {
  auto e = find(key);
  if (!e) return std::nullopt;
  return e->future.exception(timeout);
}

std::optional<Progress> FutureCollection::progress(std::string_view key) const {
  auto e = find(key);
  if (!e || !e->progress) return std::nullopt;
  return e->progress->get();
}

std::optional<nlohmann::json> FutureCollection::status(std::string_view key) const {
  auto e = find(key);
  if (!e) return std::nullopt;
  const FutureState state = e->future.state();
  nlohmann::json out = {{"key", e->key}, {"state", to_string(state)}, {"progress", nullptr}};
  if (e->progress) {
    if (auto p = e->progress->get()) {
      nlohmann::json progress = {{"fraction", p->fraction}, {"message", p->message}};
      if (p->done) progress["done"] = *p->done;
      if (p->total) progress["total"] = *p->total;
      out["progress"] = std::move(progress);
    }
  }
  if (state == FutureState::finished) {
    if (const auto& error = state_of(e->future)->error()) {
      out["error"] = {{"type", detail::exception_type(error)}, {"message", detail::what(error)}};
    } else if (e->render != nullptr) {
      out["result"] = e->render(e->future);
    } else {
      out["result"] = nullptr;
      out["result_type"] = detail::demangle(e->future.result_type().name());
    }
  }
  return out;
}

}  // namespace webexec
