/// What every task of one `Executor` shares, and how a submit captures its
/// context (not API). Split from executor.hpp so that engines can read a
/// task's executor settings (to report its error) without depending on
/// `Executor`: the arrows go Executor -> engines, never back.
#pragma once

#include <cstdint>
#include <exception>
#include <string>

#include "webexec/context.hpp"
#include "webexec/detail/export.hpp"

namespace webexec {
class App;
}  // namespace webexec

namespace webexec::detail {

/// What every task of one executor shares; lives as long as the executor.
struct ExecutorSettings {
  App* app = nullptr;
  std::string name;
  bool propagate_exceptions = false;
  bool push_app_context = true;
  /// Unique per executor, so a context block cached by a request is never
  /// reused by another executor that happens to live at the same address.
  std::uint64_t id = 0;
  /// The context of tasks submitted outside any request or task.
  ContextRef default_block;
};

/// The context for a task submitted now: the running task's (nested
/// submit), else the current request's, else the app alone. Reuses a
/// shared block whenever the context is unchanged.
WEBEXEC_API TaskContext capture_context(const ExecutorSettings& settings);

/// Reports a task's exception to the app (EXECUTOR_PROPAGATE_EXCEPTIONS).
WEBEXEC_API void report_task_error(const ExecutorSettings& settings, const std::string& label,
                                   std::exception_ptr error) noexcept;

}  // namespace webexec::detail
