/// The exceptions webexec throws, named after Python's `concurrent.futures`.
///
/// ```
/// Error : std::runtime_error
/// ├── CancelledError      result()/exception() of a cancelled future
/// ├── TimeoutError        result/exception/wait/as_completed/map ran out of time
/// ├── InvalidStateError   set twice, or waiting would deadlock
/// ├── ShutdownError       submit after shutdown
/// ├── BrokenPromise       the producer went away without setting a result
/// ├── RemoteTaskError     a task threw in another process
/// ├── ContextError        current_app()/current_request()/g() without one
/// ├── CapacityError       the stored-futures collection is full of running work
/// ├── PayloadTooLargeError a process job's arguments or result exceed EXECUTOR_MAX_PAYLOAD
/// └── BrokenExecutor      the executor can no longer run tasks
///     ├── BrokenThreadPool    an initializer failed
///     └── BrokenProcessPool   a worker process died
/// ```
///
/// Bad arguments (Python's `ValueError`) are `std::invalid_argument`; operating
/// system failures are `std::system_error`.
///
/// Example:
/// ```
/// try {
///   future.result(std::chrono::seconds(1));
/// } catch (const webexec::TimeoutError&) {
///   // still running
/// }
/// ```
#pragma once

#include <stdexcept>
#include <string>

#include "webexec/detail/export.hpp"

namespace webexec {

/// Base of every webexec error.
class WEBEXEC_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~Error() override;
};

/// The future was cancelled; thrown by `result()` and `exception()`.
class WEBEXEC_API CancelledError : public Error {
 public:
  using Error::Error;
  ~CancelledError() override;
};

/// An operation with a timeout did not finish in time.
class WEBEXEC_API TimeoutError : public Error {
 public:
  using Error::Error;
  ~TimeoutError() override;
};

/// The operation is not valid in the future's or executor's current state:
/// a result set twice, or a wait that could only deadlock.
class WEBEXEC_API InvalidStateError : public Error {
 public:
  using Error::Error;
  ~InvalidStateError() override;
};

/// `submit` (or `map`) was called after `shutdown()`.
class WEBEXEC_API ShutdownError : public Error {
 public:
  using Error::Error;
  ~ShutdownError() override;
};

/// A `Promise` was destroyed before it set a result, so its future can never
/// get one.
class WEBEXEC_API BrokenPromise : public Error {
 public:
  using Error::Error;
  ~BrokenPromise() override;
};

/// A task raised an exception in another process. `what()` reads
/// "<type>: <message>"; type() and message() give the parts.
class WEBEXEC_API RemoteTaskError : public Error {
 public:
  RemoteTaskError(std::string type, std::string message);
  ~RemoteTaskError() override;
  /// The demangled type of the exception the task threw, e.g. "std::runtime_error".
  [[nodiscard]] const std::string& type() const noexcept { return type_; }
  /// Its what().
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  std::string type_;
  std::string message_;
};

/// `current_app()`, `current_request()` or `g()` was called where there is
/// no such context; the message says why (outside a request, outside a task,
/// or `EXECUTOR_PUSH_APP_CONTEXT` is false).
class WEBEXEC_API ContextError : public Error {
 public:
  using Error::Error;
  ~ContextError() override;
};

/// `submit_stored` was refused: the `FutureCollection` is at its
/// `max_length` and none of its futures has finished, so none can be evicted.
class WEBEXEC_API CapacityError : public Error {
 public:
  using Error::Error;
  ~CapacityError() override;
};

/// A process job's encoded arguments and context, or its result, are larger
/// than `EXECUTOR_MAX_PAYLOAD`; the message names both sizes.
class WEBEXEC_API PayloadTooLargeError : public Error {
 public:
  using Error::Error;
  ~PayloadTooLargeError() override;
};

/// The executor is broken and cannot run tasks any more.
class WEBEXEC_API BrokenExecutor : public Error {
 public:
  using Error::Error;
  ~BrokenExecutor() override;
};

/// A `ThreadPoolExecutor` whose initializer failed.
class WEBEXEC_API BrokenThreadPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
  ~BrokenThreadPool() override;
};

/// A worker process died while running a task.
class WEBEXEC_API BrokenProcessPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
  ~BrokenProcessPool() override;
};

}  // namespace webexec
