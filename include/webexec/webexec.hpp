/// webexec: Python's concurrent.futures and Flask-Executor for C++ web
/// services. Include this for everything.
#pragma once

#include "webexec/app.hpp"                   // IWYU pragma: export
#include "webexec/config.hpp"                // IWYU pragma: export
#include "webexec/context.hpp"               // IWYU pragma: export
#include "webexec/engine_stats.hpp"          // IWYU pragma: export
#include "webexec/errors.hpp"                // IWYU pragma: export
#include "webexec/executor.hpp"              // IWYU pragma: export
#include "webexec/future.hpp"                // IWYU pragma: export
#include "webexec/future_collection.hpp"     // IWYU pragma: export
#include "webexec/map_result.hpp"            // IWYU pragma: export
#include "webexec/test_request_context.hpp"  // IWYU pragma: export
#include "webexec/thread_pool_executor.hpp"  // IWYU pragma: export
#include "webexec/timeout.hpp"               // IWYU pragma: export
#include "webexec/version.hpp"               // IWYU pragma: export
#include "webexec/wait.hpp"                  // IWYU pragma: export
