/// The serialisable form of a task's context, for engines that run tasks in
/// other processes (not API). What crosses: the app's name and config, the
/// request snapshot, and the part of g whose values are strings, booleans,
/// integers, floating-point numbers or `nlohmann::json` (other values stay
/// behind).
#pragma once

#include <nlohmann/json.hpp>

#include "webexec/context.hpp"
#include "webexec/detail/export.hpp"

namespace webexec {
class App;
class Config;
}  // namespace webexec

namespace webexec::detail {

WEBEXEC_API nlohmann::json request_to_json(const RequestContext& request);
WEBEXEC_API RequestContext request_from_json(const nlohmann::json& json);

/// The JSON-serialisable entries of `g`, each as {"type": ..., "value": ...}.
WEBEXEC_API nlohmann::json g_to_json(const G& g);
WEBEXEC_API G g_from_json(const nlohmann::json& json);

WEBEXEC_API nlohmann::json config_to_json(const Config& config);
WEBEXEC_API void config_from_json(const nlohmann::json& json, Config& config);

/// {"name", "config"} of an app.
WEBEXEC_API nlohmann::json app_to_json(const App& app);

/// {"app": {"name", "config"} | null, "no_app_reason", "request": ... | null, "g": ...}
/// `app_json`, if given, is app_to_json(*ctx.app()) computed beforehand.
WEBEXEC_API nlohmann::json context_to_json(const TaskContext& ctx,
                                           const nlohmann::json* app_json = nullptr);

}  // namespace webexec::detail
