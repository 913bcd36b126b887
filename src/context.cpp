#include "webexec/context.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <string>

#include "webexec/app.hpp"
#include "webexec/detail/demangle.hpp"
#include "webexec/detail/future_state.hpp"
#include "webexec/detail/spin.hpp"
#include "webexec/errors.hpp"

namespace webexec {

// ---------------------------------------------------------------- G

struct G::Data {
  std::atomic<long> refs{1};
  Map map;
};

G::G(const G& other) noexcept : data_(other.data_) {
  if (data_ != nullptr) data_->refs.fetch_add(1, std::memory_order_relaxed);
}

G& G::operator=(const G& other) noexcept {
  G copy(other);
  std::swap(data_, copy.data_);
  ++writes_;
  return *this;
}

G& G::operator=(G&& other) noexcept {
  G moved(std::move(other));
  std::swap(data_, moved.data_);
  ++writes_;
  return *this;
}

G::~G() {
  if (data_ != nullptr && data_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete data_;
}

G::Map& G::mutable_map() {
  ++writes_;
  if (data_ == nullptr) {
    data_ = new Data();
  } else if (data_->refs.load(std::memory_order_acquire) != 1) {
    // Shared with another copy: detach before writing.
    auto* mine = new Data();
    mine->map = data_->map;
    G old;
    old.data_ = std::exchange(data_, mine);
  }
  return data_->map;
}

const std::any* G::find(std::string_view key) const {
  if (data_ == nullptr) return nullptr;
  const auto it = data_->map.find(key);
  return it == data_->map.end() ? nullptr : &it->second;
}

const std::any& G::at(std::string_view key) const {
  if (const std::any* v = find(key)) return *v;
  throw std::out_of_range("g has no key '" + std::string(key) + "'");
}

bool G::erase(std::string_view key) {
  if (find(key) == nullptr) return false;
  Map& map = mutable_map();
  map.erase(map.find(key));
  return true;
}

std::size_t G::size() const noexcept { return data_ == nullptr ? 0 : data_->map.size(); }

std::vector<std::string> G::keys() const {
  std::vector<std::string> out;
  if (data_ != nullptr) {
    for (const auto& [key, value] : data_->map) out.push_back(key);
  }
  return out;
}

void G::throw_bad_type(std::string_view key, const std::type_info& stored,
                       const std::type_info& wanted) {
  throw std::invalid_argument("g['" + std::string(key) + "'] holds a " +
                              detail::demangle(stored.name()) + ", not a " +
                              detail::demangle(wanted.name()));
}

// ---------------------------------------------------------------- RequestContext

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

std::optional<std::string> first(const RequestContext::Params& params, std::string_view name,
                                 bool ignore_case) {
  for (const auto& [k, v] : params) {
    if (ignore_case ? iequals(k, name) : k == name) return v;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> RequestContext::header(std::string_view name) const {
  return first(headers, name, true);
}
std::optional<std::string> RequestContext::query_param(std::string_view name) const {
  return first(query, name, false);
}
std::optional<std::string> RequestContext::form_param(std::string_view name) const {
  return first(form, name, false);
}

// ---------------------------------------------------------------- ambient context

namespace detail {

constinit thread_local Ambient ambient_state;

RequestScope::~RequestScope() = default;

void RequestScope::set_cached_block(ContextRef block) noexcept {
  cached_for_ = block ? block->executor_id : 0;
  cached_g_writes_ = g_.writes();
  cached_block_ = std::move(block);
}

const std::shared_ptr<const RequestContext>& RequestScope::snapshot() {
  if (!snapshot_) snapshot_ = build_snapshot();
  return snapshot_;
}

ScopedRequest::ScopedRequest(RequestScope* scope) noexcept
    : previous_(std::exchange(ambient().request, scope)) {}

ScopedRequest::~ScopedRequest() { ambient().request = previous_; }

ContextRef make_block(App* app, const char* no_app_reason,
                      std::shared_ptr<const RequestContext> request, G g,
                      const ExecutorSettings* executor, std::uint64_t executor_id) {
  auto* block = new ContextBlock();
  block->executor_id = executor_id;
  block->app = app;
  block->no_app_reason = app == nullptr ? no_app_reason : nullptr;
  block->request = std::move(request);
  block->g = std::move(g);
  block->executor = executor;
  return ContextRef(block);
}

TaskContext::TaskContext(const TaskContext& other) {
  if (const TaskExtra* e = other.extra()) {
    word_ = reinterpret_cast<std::uintptr_t>(new TaskExtra(*e)) | kExtraBit;
  } else {
    word_ = reinterpret_cast<std::uintptr_t>(other.block_ref().release());
  }
}

void TaskContext::release() noexcept {
  if (TaskExtra* e = extra()) {
    delete e;
  } else {
    const ContextRef drop(reinterpret_cast<ContextBlock*>(word_));  // releases the reference
  }
  word_ = 0;
}

TaskExtra& TaskContext::ensure_extra() {
  if (TaskExtra* e = extra()) return *e;
  auto made = std::make_unique<TaskExtra>();
  made->block = ContextRef(reinterpret_cast<ContextBlock*>(word_));  // takes over our reference
  word_ = reinterpret_cast<std::uintptr_t>(made.release()) | kExtraBit;
  return *extra();
}

G& TaskContext::g() {
  TaskExtra& e = ensure_extra();
  if (!e.g) {
    const ContextBlock* b = e.block.get();
    e.g = b != nullptr ? b->g : G();
  }
  return *e.g;
}

const G& TaskContext::current_g() const noexcept {
  static const G empty;
  if (has_own_g()) return *extra()->g;
  const ContextBlock* b = block();
  return b != nullptr ? b->g : empty;
}

const std::string& TaskContext::label() const noexcept {
  static const std::string none;
  const TaskExtra* e = extra();
  return e != nullptr ? e->label : none;
}

void TaskContext::set_job(std::string label, std::shared_ptr<ProgressSlot> progress) {
  TaskExtra& e = ensure_extra();
  e.label = std::move(label);
  e.progress = std::move(progress);
}

void run_teardown(TaskContext& ctx) noexcept { run_teardown(ctx, nullptr); }

void run_teardown(TaskContext& ctx, std::exception_ptr error) noexcept {
  const ScopedTask scope(ctx);  // hooks see the task's context, as Flask's do
  if (App* app = ctx.app()) app->do_teardown_appcontext(std::move(error));
}

void ProgressSlot::set(Progress progress) {
  if (listener_) listener_(progress);
  while (lock_.exchange(true, std::memory_order_acquire)) cpu_relax();
  progress_ = std::move(progress);
  has_ = true;
  lock_.store(false, std::memory_order_release);
}

std::optional<Progress> ProgressSlot::get() const {
  while (lock_.exchange(true, std::memory_order_acquire)) cpu_relax();
  std::optional<Progress> out;
  if (has_) out = progress_;
  lock_.store(false, std::memory_order_release);
  return out;
}

namespace {

/// Runs a done callback of an executor's future inside the context captured
/// when it was registered (Flask-Executor's FutureProxy behaviour), or, if
/// it was registered outside any context, inside a copy of the task's own
/// context (other callbacks may run in the task's context at the same time).
class ContextCallback final : public CallbackNode {
 public:
  ContextCallback(std::optional<TaskContext> ctx, CallbackNode* inner)
      : ctx_(std::move(ctx)), inner_(inner) {}
  ~ContextCallback() override { delete inner_; }
  ContextCallback(const ContextCallback&) = delete;
  ContextCallback& operator=(const ContextCallback&) = delete;

  void invoke(StateBase& state) noexcept override {
    try {
      if (ctx_) {
        run_in_context(*ctx_, [&] { inner_->invoke(state); });
      } else if (const TaskContext* task = state.task_context()) {
        // Copied only now, once the task has finished: a copy taken at
        // registration could race with the task writing its g.
        TaskContext mine(*task);
        run_in_context(mine, [&] { inner_->invoke(state); });
      } else {
        inner_->invoke(state);
      }
    } catch (...) {  // NOLINT(bugprone-empty-catch): inner reports its own errors
    }
  }

 private:
  std::optional<TaskContext> ctx_;
  CallbackNode* inner_;
};

}  // namespace

CallbackNode* wrap_in_context(StateBase& /*state*/, CallbackNode* node) {
  const Ambient& a = ambient();
  std::optional<TaskContext> ctx;
  if (a.task != nullptr) {
    ctx = *a.task;
  } else if (a.request != nullptr) {
    ctx = TaskContext(
        make_block(a.request->app(), nullptr, a.request->snapshot(), a.request->g(), nullptr));
  }
  return new ContextCallback(std::move(ctx), node);
}

}  // namespace detail

// ---------------------------------------------------------------- free functions

namespace {

constexpr const char* kOutsideApp =
    "working outside of application context: current_app() and g() work inside a task, a done "
    "callback or a request handler";

}  // namespace

App& current_app() {
  const detail::Ambient& a = detail::ambient();
  if (a.task != nullptr) {
    if (App* app = a.task->app()) return *app;
    const char* reason = a.task->no_app_reason();
    throw ContextError(reason != nullptr ? reason : kOutsideApp);
  }
  if (a.request != nullptr && a.request->app() != nullptr) return *a.request->app();
  throw ContextError(kOutsideApp);
}

const RequestContext& current_request() {
  detail::Ambient& a = detail::ambient();
  if (a.task != nullptr) {
    if (const RequestContext* request = a.task->request()) return *request;
    throw ContextError(
        "no request context: this task was submitted outside a request (startup code, a CLI, or "
        "a task that had none)");
  }
  if (a.request != nullptr) return *a.request->snapshot();
  throw ContextError(
      "working outside of request context: current_request() works inside a task submitted "
      "from a request, or inside a request handler");
}

G& g() {
  detail::Ambient& a = detail::ambient();
  if (a.task != nullptr) {
    if (a.task->app() == nullptr) {
      const char* reason = a.task->no_app_reason();
      throw ContextError(reason != nullptr ? reason : kOutsideApp);
    }
    return a.task->g();
  }
  if (a.request != nullptr) return a.request->g();
  throw ContextError(kOutsideApp);
}

bool has_app_context() noexcept {
  const detail::Ambient& a = detail::ambient();
  if (a.task != nullptr) return a.task->app() != nullptr;
  return a.request != nullptr && a.request->app() != nullptr;
}

bool has_request_context() noexcept {
  const detail::Ambient& a = detail::ambient();
  if (a.task != nullptr) return a.task->request() != nullptr;
  return a.request != nullptr;
}

bool report_progress(double fraction, std::string message) {
  const detail::Ambient& a = detail::ambient();
  if (a.task == nullptr || a.task->progress() == nullptr) return false;
  a.task->progress()->set(Progress{.fraction = std::clamp(fraction, 0.0, 1.0),
                                   .done = {},
                                   .total = {},
                                   .message = std::move(message)});
  return true;
}

bool report_progress(std::int64_t done, std::int64_t total, std::string message) {
  if (total <= 0 || done < 0 || done > total) {
    throw std::invalid_argument("report_progress(done=" + std::to_string(done) + ", total=" +
                                std::to_string(total) + "): need 0 <= done <= total and total > 0");
  }
  const detail::Ambient& a = detail::ambient();
  if (a.task == nullptr || a.task->progress() == nullptr) return false;
  a.task->progress()->set(
      Progress{.fraction = static_cast<double>(done) / static_cast<double>(total),
               .done = done,
               .total = total,
               .message = std::move(message)});
  return true;
}

}  // namespace webexec
