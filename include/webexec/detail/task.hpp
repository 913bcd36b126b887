/// A task and its future in one allocation (not API).
#pragma once

#include <functional>
#include <memory>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>

#include "webexec/detail/future_state.hpp"

namespace webexec::detail {

/// True if `Fn` is called with a `std::stop_token` first, as `std::jthread` does.
template <typename Fn, typename... Args>
inline constexpr bool takes_stop_token_v = std::is_invocable_v<Fn, std::stop_token, Args...>;

template <typename Fn, typename... Args>
struct TaskResult {
  using type = typename std::conditional_t<takes_stop_token_v<Fn, Args...>,
                                           std::invoke_result<Fn, std::stop_token, Args...>,
                                           std::invoke_result<Fn, Args...>>::type;
};

/// What `submit(fn, args...)` returns a future of: `fn`'s result after
/// decay-copying `fn` and the arguments, as `std::thread` does.
template <typename Fn, typename... Args>
using task_result_t = typename TaskResult<std::decay_t<Fn>, std::decay_t<Args>...>::type;

struct NoStop {};

/// What runs around a task's callable; the default adds nothing. An
/// attachment lives as long as the task's state (not just its callable).
struct NoAttachment {
  template <typename F>
  void invoke(F&& f) {
    std::forward<F>(f)();
  }
  static TaskContext* context() noexcept { return nullptr; }
};

/// The stop machinery of a task that takes a token: its own source, and the
/// executor's token, linked while the task runs.
struct TaskStop {
  std::stop_source own;
  std::stop_token executor;
};

/// The callable, its decay-copied arguments, and the result slot.
///
/// The callable is destroyed as soon as it has run or been cancelled, before
/// the result is published, so a task never keeps its captures alive after
/// its future is done (CPython's "no stale references", bpo-16284).
template <typename R, typename Attach, typename Fn, typename... Args>
class TaskState final : public ResultState<R> {
  static constexpr bool kTakesToken = takes_stop_token_v<Fn, Args...>;

 public:
  /// Builds the attachment first, then moves the callable and its
  /// arguments in: an attachment made by a capture function captures before
  /// anything is moved from the caller.
  template <typename AttachArg, typename F, typename... A>
  explicit TaskState(const void* owner, AttachArg&& attach_arg, F&& fn, A&&... args)
      : ResultState<R>(owner), attach_(std::forward<AttachArg>(attach_arg)) {
    std::construct_at(&call_, std::forward<F>(fn), std::forward<A>(args)...);
  }

  TaskContext* task_context() noexcept override { return attach_.context(); }

  ~TaskState() override { drop_task(); }

  /// Links this task's token to the executor's stop token (shutdown with
  /// cancel_futures stops running tasks through it).
  void link_stop_token(std::stop_token executor_token) noexcept {
    if constexpr (kTakesToken) stop_.executor = std::move(executor_token);
  }

  bool request_stop() noexcept override {
    if constexpr (kTakesToken) {
      stop_.own.request_stop();
      return true;
    } else {
      return false;
    }
  }

  [[nodiscard]] bool stop_requested() const noexcept override {
    if constexpr (kTakesToken) {
      return stop_.own.stop_requested();
    } else {
      return false;
    }
  }

 private:
  struct RequestOwnStop {
    std::stop_source* source;
    void operator()() const noexcept { source->request_stop(); }
  };

  void run() noexcept override {
    try {
      attach_.invoke([this] {
        if constexpr (kTakesToken) {
          const std::stop_callback<RequestOwnStop> link(stop_.executor, RequestOwnStop{&stop_.own});
          invoke(stop_.own.get_token());
        } else {
          invoke();
        }
      });
    } catch (...) {
      this->error_ = std::current_exception();
    }
    drop_task();
  }

  template <typename... Token>
  void invoke(Token&&... token) {
    auto call = [&](Fn& fn, Args&... args) -> R {
      return std::invoke(std::move(fn), std::forward<Token>(token)..., std::move(args)...);
    };
    if constexpr (std::is_void_v<R>) {
      std::apply(call, call_);
    } else {
      this->value_.emplace(std::apply(call, call_));
    }
  }

  void drop_task() noexcept override {
    if (alive_) {
      alive_ = false;
      call_.~tuple();
    }
  }

  union {
    std::tuple<Fn, Args...> call_;
  };
  bool alive_ = true;
  [[no_unique_address]] std::conditional_t<kTakesToken, TaskStop, NoStop> stop_;
  [[no_unique_address]] Attach attach_;
};

}  // namespace webexec::detail
