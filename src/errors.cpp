#include "webexec/errors.hpp"

namespace webexec {

// Out-of-line destructors anchor each class's vtable and type information in
// this library, so `catch` matches across shared-library boundaries.
Error::~Error() = default;
CancelledError::~CancelledError() = default;
TimeoutError::~TimeoutError() = default;
InvalidStateError::~InvalidStateError() = default;
ShutdownError::~ShutdownError() = default;
BrokenPromise::~BrokenPromise() = default;
RemoteTaskError::~RemoteTaskError() = default;
ContextError::~ContextError() = default;
CapacityError::~CapacityError() = default;
BrokenExecutor::~BrokenExecutor() = default;
BrokenThreadPool::~BrokenThreadPool() = default;
BrokenProcessPool::~BrokenProcessPool() = default;

}  // namespace webexec
