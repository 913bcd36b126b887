// The Engine interface's shared parts (detail/engine.hpp).
#include "webexec/detail/engine.hpp"

namespace webexec::detail {

Engine::~Engine() = default;

}  // namespace webexec::detail
