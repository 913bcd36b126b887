#include "webexec/executor.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "webexec/detail/demangle.hpp"
#include "webexec/errors.hpp"

namespace webexec {
namespace {

constexpr const char* kNoAppReason =
    "no app context: EXECUTOR_PUSH_APP_CONTEXT is false for this executor, so its tasks run "
    "without the app context (current_app() and g() are unavailable)";

}  // namespace

namespace detail {

void report_task_error(const ExecutorSettings& settings, const std::string& label,
                       std::exception_ptr error) noexcept {
  if (settings.app == nullptr) return;
  try {
    settings.app->report_error({.origin = "task",
                                .executor = settings.name,
                                .key = label,
                                .message = what(error),
                                .exception = error});
  } catch (...) {  // NOLINT(bugprone-empty-catch): reporting never throws into the task
  }
}

TaskContext capture_context(const ExecutorSettings& settings) {
  Ambient& a = ambient();
  App* app = settings.push_app_context ? settings.app : nullptr;
  if (a.task != nullptr) {
    // Nested submit: the parent's block as is, unless it belongs to another
    // executor or the parent has its own (possibly changed) g.
    const TaskContext& parent = *a.task;
    if (parent.block() && parent.block()->executor_id == settings.id && !parent.has_own_g()) {
      return TaskContext(parent.block());
    }
    const G g = settings.push_app_context ? parent.current_g() : G();
    return TaskContext(make_block(
        app, kNoAppReason, parent.block() ? parent.block()->request : nullptr, g, &settings));
  }
  if (a.request != nullptr) {
    ContextRef& cached = a.request->cached_block();
    const G& g = a.request->g();
    if (!cached || cached->executor_id != settings.id ||
        (settings.push_app_context && !cached->g.shares_storage_with(g))) {
      cached = make_block(app, kNoAppReason, a.request->snapshot(),
                          settings.push_app_context ? g : G(), &settings, settings.id);
    }
    return TaskContext(cached);
  }
  return TaskContext(settings.default_block);
}

void DefaultCallbackNode::invoke(StateBase& state) noexcept {
  try {
    state.add_ref();
    const AnyFuture future = FutureAccess::adopt<AnyFuture>(&state);
    if (TaskContext* ctx = state.task_context()) {
      run_in_context(*ctx, [&] { (*fn_)(future); });
    } else {
      (*fn_)(future);
    }
  } catch (...) {
    report_error("default done callback", std::current_exception());
  }
}

}  // namespace detail

namespace {

void validate_name(const std::string& name) {
  const bool ok = std::all_of(name.begin(), name.end(),
                              [](unsigned char c) { return std::isalnum(c) != 0 || c == '_'; });
  if (!ok) {
    throw std::invalid_argument(
        "Executor names may only contain letters, numbers or underscores, got '" + name + "'");
  }
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

}  // namespace

Executor::Executor(std::string name) : futures_(50) {
  validate_name(name);
  settings_.name = std::move(name);
  static std::atomic<std::uint64_t> next_id{1};
  settings_.id = next_id.fetch_add(1, std::memory_order_relaxed);
}

Executor::Executor(App& app, std::string name) : Executor(std::move(name)) { init_app(app); }

Executor::~Executor() {
  if (pool_) pool_->shutdown(true, false);
  if (settings_.app != nullptr) {
    try {
      const std::string key = settings_.name + "executor";
      if (auto registered = settings_.app->extension<Executor>(key);
          registered && registered.get() == this) {
        settings_.app->remove_extension(key);
      }
    } catch (...) {  // NOLINT(bugprone-empty-catch): another type under our key: leave it
    }
  }
}

std::string Executor::config_key(std::string_view key) const {
  std::string out = settings_.name.empty() ? std::string() : upper(settings_.name) + "_";
  out += key;
  return out;
}

void Executor::init_app(App& app) {
  if (settings_.app != nullptr) {
    throw InvalidStateError("Executor '" + settings_.name + "' is already initialised with app '" +
                            settings_.app->name() +
                            "'; init_app may be called once (create another Executor for "
                            "another app)");
  }
  // The app config wins; a key missing there is read from the environment.
  auto read = [&](std::string_view key) -> std::optional<std::pair<std::string, ConfigValue>> {
    std::string full = config_key(key);
    if (auto v = app.config().get(full)) return std::make_pair(full, *v);
    if (const char* env = std::getenv(full.c_str())) {
      return std::make_pair(full, ConfigValue(std::string(env)));
    }
    return std::nullopt;
  };

  // Validate everything before starting anything.
  if (auto type = read("EXECUTOR_TYPE")) {
    const std::string value = to_string(type->second);
    if (value != "thread") {
      throw std::invalid_argument(type->first + "='" + value +
                                  "' is not a valid executor type; valid types: 'thread'");
    }
  }
  ThreadPoolOptions options;
  options.thread_name_prefix = settings_.name.empty() ? "webexec" : settings_.name;
  if (auto v = read("EXECUTOR_MAX_WORKERS")) {
    options.max_workers = static_cast<int>(parse_int(v->first, v->second, 1, 1 << 16));
  }
  std::size_t max_length = 50;
  if (auto v = read("EXECUTOR_FUTURES_MAX_LENGTH")) {
    max_length = static_cast<std::size_t>(parse_int(v->first, v->second, 1, 1 << 30));
  }
  std::optional<FutureCollection::Clock::duration> ttl;
  if (auto v = read("EXECUTOR_FUTURES_TTL")) {
    ttl = std::chrono::seconds(parse_int(v->first, v->second, 1, INT32_MAX));
  }
  bool propagate = false;
  if (auto v = read("EXECUTOR_PROPAGATE_EXCEPTIONS")) propagate = parse_bool(v->first, v->second);
  bool push_app = true;
  if (auto v = read("EXECUTOR_PUSH_APP_CONTEXT")) push_app = parse_bool(v->first, v->second);

  pool_ = std::make_unique<ThreadPoolExecutor>(std::move(options));
  futures_.set_max_length(max_length);
  futures_.set_ttl(ttl);
  settings_.propagate_exceptions = propagate;
  settings_.push_app_context = push_app;
  settings_.app = &app;
  settings_.default_block = detail::make_block(push_app ? &app : nullptr, kNoAppReason, nullptr,
                                               G(), &settings_, settings_.id);
  // Non-owning: the executor unregisters itself when destroyed.
  app.set_extension(settings_.name + "executor",
                    std::shared_ptr<Executor>(std::shared_ptr<void>(), this));
}

ThreadPoolExecutor& Executor::engine() {
  if (!pool_) {
    throw InvalidStateError("Executor '" + settings_.name +
                            "' is not initialised: call init_app(app) before using it");
  }
  return *pool_;
}

int Executor::max_workers() const {
  if (!pool_) {
    throw InvalidStateError("Executor '" + settings_.name +
                            "' is not initialised: call init_app(app) before using it");
  }
  return pool_->max_workers();
}

void Executor::add_default_done_callback(std::function<void(const AnyFuture&)> fn) {
  const std::lock_guard lock(callbacks_mutex_);
  auto next = default_callbacks_
                  ? std::make_shared<std::vector<std::shared_ptr<const detail::DefaultCallback>>>(
                        *default_callbacks_)
                  : std::make_shared<std::vector<std::shared_ptr<const detail::DefaultCallback>>>();
  next->push_back(std::make_shared<const detail::DefaultCallback>(std::move(fn)));
  default_callbacks_ = std::move(next);
  has_default_callbacks_.store(true, std::memory_order_release);
}

void Executor::attach_default_callbacks(detail::StateBase& task) {
  if (!has_default_callbacks_.load(std::memory_order_acquire)) return;
  std::shared_ptr<const std::vector<std::shared_ptr<const detail::DefaultCallback>>> callbacks;
  {
    const std::lock_guard lock(callbacks_mutex_);
    callbacks = default_callbacks_;
  }
  for (const auto& cb : *callbacks) task.add_callback(new detail::DefaultCallbackNode(cb));
}

void Executor::shutdown(bool wait, bool cancel_futures) { engine().shutdown(wait, cancel_futures); }

}  // namespace webexec
