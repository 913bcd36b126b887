#include "webexec/errors.hpp"

#include <utility>

namespace webexec {

// Out-of-line destructors anchor each class's vtable and type information in
// this library, so `catch` matches across shared-library boundaries.
Error::~Error() = default;
CancelledError::~CancelledError() = default;
TimeoutError::~TimeoutError() = default;
InvalidStateError::~InvalidStateError() = default;
ShutdownError::~ShutdownError() = default;
BrokenPromise::~BrokenPromise() = default;
RemoteTaskError::RemoteTaskError(std::string type, std::string message)
    : Error(type + ": " + message), type_(std::move(type)), message_(std::move(message)) {}
RemoteTaskError::~RemoteTaskError() = default;
ContextError::~ContextError() = default;
CapacityError::~CapacityError() = default;
PayloadTooLargeError::~PayloadTooLargeError() = default;
BrokenExecutor::~BrokenExecutor() = default;
BrokenThreadPool::~BrokenThreadPool() = default;
BrokenProcessPool::~BrokenProcessPool() = default;

}  // namespace webexec
