// Executor: init_app reads the configuration and picks the engine (the one
// branch on EXECUTOR_TYPE); the rest forwards to the engine. Runs on the
// calling thread; see include/webexec/executor.hpp.
#include "webexec/executor.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "webexec/detail/demangle.hpp"
#include "webexec/detail/process_pool.hpp"
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
    if (parent.block() != nullptr && parent.block()->executor_id == settings.id &&
        !parent.has_own_g()) {
      return TaskContext(parent.block_ref());
    }
    const G g = settings.push_app_context ? parent.current_g() : G();
    return TaskContext(make_block(app, kNoAppReason,
                                  parent.block() != nullptr ? parent.block()->request : nullptr, g,
                                  &settings));
  }
  if (a.request != nullptr) {
    if (!a.request->has_cached_block_for(settings.id)) {
      a.request->set_cached_block(make_block(app, kNoAppReason, a.request->snapshot(),
                                             settings.push_app_context ? a.request->g() : G(),
                                             &settings, settings.id));
    }
    return TaskContext(a.request->cached_block());
  }
  return TaskContext(settings.default_block);
}

void DefaultCallbackNode::invoke(StateBase& state) noexcept {
  try {
    state.add_ref();
    const AnyFuture future = FutureAccess::adopt<AnyFuture>(&state);
    if (const TaskContext* task = state.task_context()) {
      // A copy of its own: an inline callback may use the task's context at
      // the same time.
      TaskContext ctx(*task);
      run_in_context(ctx, [&] { (*fn_)(future); });
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

int default_process_count() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
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

void Executor::detach_from_app() noexcept {
  // The app is being destroyed while this executor lives on: finish the
  // work (which may still use the app) and drop the engine.
  if (engine_) engine_->close();
  pool_ = nullptr;
  remote_ = false;
  engine_.reset();
  settings_.app = nullptr;
  settings_.default_block = detail::ContextRef();
}

Executor::~Executor() {
  // Also from one of the engine's own threads: see Engine::close().
  if (engine_) engine_->close();
  if (settings_.app != nullptr) {
    settings_.app->forget_on_destroy(this);
    // Only our own entry: never one that another object holds under the name.
    settings_.app->remove_extension(settings_.name + "executor", static_cast<const void*>(this));
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
  // Every key read is known: misspelt_keys() below warns about the others.
  std::vector<std::string> known = {"EXECUTOR_MAX_PAYLOAD"};  // keys read elsewhere
  auto read = [&](std::string_view key) -> std::optional<std::pair<std::string, ConfigValue>> {
    known.emplace_back(key);
    std::string full = config_key(key);
    if (auto v = app.config().get(full)) return std::make_pair(full, *v);
    if (const char* env = std::getenv(full.c_str())) {
      return std::make_pair(full, ConfigValue(std::string(env)));
    }
    return std::nullopt;
  };

  // One executor per name and app: a second one used to replace the first's
  // app.extensions entry (and remove it when destroyed).
  const std::string extension_key = settings_.name + "executor";
  const auto throw_duplicate = [&] {
    throw InvalidStateError("app " + quote_value(app.name()) + " already has an executor named " +
                            quote_value(settings_.name) + " (extension " +
                            quote_value(extension_key) +
                            "); give each Executor of one app its own name");
  };
  if (app.has_extension(extension_key)) throw_duplicate();

  // Validate everything before starting anything.
  bool process = false;
  if (auto type = read("EXECUTOR_TYPE")) {
    const std::string value = to_string(type->second);
    if (value == "process") {
      process = true;
    } else if (value != "thread") {
      throw std::invalid_argument(escape_text(type->first) + "=" + quote_value(value) +
                                  " is not a valid executor type; valid types: 'thread', "
                                  "'process'");
    }
  }
  ThreadPoolOptions options;
  options.thread_name_prefix = settings_.name.empty() ? "webexec" : settings_.name;
  if (auto v = read("EXECUTOR_MAX_WORKERS")) {
    try {
      options.max_workers = static_cast<int>(
          parse_int(v->first, v->second, 1, process ? max_worker_processes : max_worker_threads));
    } catch (const std::out_of_range& e) {
      throw std::out_of_range(std::string(e.what()) +
                              (process ? " worker processes (EXECUTOR_TYPE=process)"
                                       : " worker threads (EXECUTOR_TYPE=thread)"));
    }
  }
  std::optional<int> max_tasks_per_child;
  if (auto v = read("EXECUTOR_MAX_TASKS_PER_CHILD")) {
    if (!process) {
      throw std::invalid_argument(v->first +
                                  " applies to EXECUTOR_TYPE='process' only (this executor runs "
                                  "threads)");
    }
    max_tasks_per_child = static_cast<int>(parse_int(v->first, v->second, 1, INT32_MAX));
  }
  std::uint32_t max_payload = 64U << 20U;  // EXECUTOR_MAX_PAYLOAD's default, 64 MiB
  if (auto v = read("EXECUTOR_MAX_PAYLOAD")) {
    if (!process) {
      throw std::invalid_argument(v->first + " applies to EXECUTOR_TYPE='process' only");
    }
    max_payload = static_cast<std::uint32_t>(parse_int(v->first, v->second, 1, 1 << 30));
  }
  std::optional<detail::Clock::duration> task_timeout;
  if (auto v = read("EXECUTOR_TASK_TIMEOUT")) {
    if (!process) {
      throw std::invalid_argument(v->first +
                                  " applies to EXECUTOR_TYPE='process' only: a thread cannot be "
                                  "killed (use a std::stop_token to stop thread tasks)");
    }
    task_timeout = parse_duration(v->first, v->second);
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

  // A misspelt key would be silently ignored: warn, naming the nearest key.
  const std::string prefix = config_key("");
  for (const auto& m : detail::misspelt_keys(app.config().keys(), prefix, known, true)) {
    app.log(LogLevel::warning, "executor " + quote_value(settings_.name) + ": unknown " +
                                   (m.from_environment ? "environment variable " : "config key ") +
                                   escape_text(m.key) + " is ignored; did you mean " + m.nearest +
                                   "?");
  }

  // The one branch on the engine type; from here on Executor talks to
  // detail::Engine only (its thread pool is cached for the inlined path).
  if (process) {
    engine_ = detail::make_process_engine(detail::ProcessPoolOptions{
        .max_workers = options.max_workers.value_or(default_process_count()),
        .max_tasks_per_child = max_tasks_per_child.value_or(0),
        .name = settings_.name,
        .max_payload = max_payload});
    task_timeout_ = task_timeout;
  } else {
    engine_ = detail::make_thread_engine(std::move(options));
  }
  pool_ = engine_->thread_pool();
  remote_ = pool_ == nullptr;
  futures_.set_max_length(max_length);
  futures_.set_ttl(ttl);
  settings_.propagate_exceptions = propagate;
  settings_.push_app_context = push_app;
  settings_.app = &app;
  settings_.default_block = detail::make_block(push_app ? &app : nullptr, kNoAppReason, nullptr,
                                               G(), &settings_, settings_.id);
  // Non-owning: the executor unregisters itself when destroyed.
  if (!app.add_extension(extension_key, std::shared_ptr<Executor>(std::shared_ptr<void>(), this))) {
    // Another thread registered the name since the check above: undo.
    pool_ = nullptr;
    remote_ = false;
    engine_.reset();
    settings_.app = nullptr;
    settings_.default_block = detail::ContextRef();
    throw_duplicate();
  }
  app.on_destroy(this, [this] { detach_from_app(); });
}

void Executor::throw_not_registered() const {
  throw std::invalid_argument(
      "executor '" + settings_.name +
      "' runs jobs in worker processes (EXECUTOR_TYPE=process): submit a registered job "
      "(executor.job(\"name\", fn).submit(...), or a function registered with "
      "WEBEXEC_REGISTER_JOB); a lambda or unregistered callable cannot cross the process "
      "boundary");
}

void Executor::throw_not_process_callable(const std::string& job) const {
  throw std::invalid_argument("job '" + job + "' cannot run in a worker process of executor '" +
                              settings_.name +
                              "': its arguments and result must convert to and from JSON "
                              "(nlohmann::json to_json/from_json)");
}

std::shared_ptr<const nlohmann::json> Executor::app_json_for(const detail::TaskContext& ctx) const {
  if (ctx.app() == nullptr || ctx.app() != settings_.app) return nullptr;
  const std::uint64_t version = settings_.app->config().version();
  const detail::MutexLock lock(app_json_mutex_);
  if (!app_json_ || app_json_version_ != version) {
    app_json_ = std::make_shared<const nlohmann::json>(detail::app_to_json(*settings_.app));
    app_json_version_ = version;
  }
  return app_json_;
}

std::vector<pid_t> Executor::worker_pids() const {
  return engine_ ? engine_->worker_pids() : std::vector<pid_t>{};
}

const detail::Engine& Executor::engine() const {
  if (!engine_) {
    throw InvalidStateError("Executor '" + settings_.name +
                            "' is not initialised: call init_app(app) before using it");
  }
  return *engine_;
}

EngineStats Executor::stats() const { return engine().stats(); }

void Executor::throw_no_thread_engine() const {
  if (engine_) {
    throw InvalidStateError("executor '" + settings_.name +
                            "' runs worker processes; this needs a thread executor");
  }
  throw InvalidStateError("Executor '" + settings_.name +
                          "' is not initialised: call init_app(app) before using it");
}

int Executor::max_workers() const { return engine().max_workers(); }

void Executor::add_default_done_callback(std::function<void(const AnyFuture&)> fn) {
  const detail::MutexLock lock(callbacks_mutex_);
  auto next = default_callbacks_
                  ? std::make_shared<std::vector<std::shared_ptr<const detail::DefaultCallback>>>(
                        *default_callbacks_)
                  : std::make_shared<std::vector<std::shared_ptr<const detail::DefaultCallback>>>();
  next->push_back(std::make_shared<const detail::DefaultCallback>(std::move(fn)));
  default_callbacks_ = std::move(next);
  has_default_callbacks_.store(true, std::memory_order_release);
}

detail::DefaultCallbackNodes Executor::default_callbacks_slow() {
  std::shared_ptr<const std::vector<std::shared_ptr<const detail::DefaultCallback>>> callbacks;
  {
    const detail::MutexLock lock(callbacks_mutex_);
    callbacks = default_callbacks_;
  }
  detail::DefaultCallbackNodes out;
  out.nodes_.reserve(callbacks->size());
  for (const auto& cb : *callbacks) {
    out.nodes_.push_back(std::make_unique<detail::DefaultCallbackNode>(cb));
  }
  return out;
}

bool Executor::is_shutdown() const { return engine().is_shutdown(); }

void Executor::shutdown(bool wait, bool cancel_futures) {
  if (!engine_) throw_no_thread_engine();  // not initialised
  engine_->shutdown(wait, cancel_futures);
}

}  // namespace webexec
