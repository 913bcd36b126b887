#include "webexec/detail/context_json.hpp"

#include <cstdint>
#include <string>
#include <utility>

#include "webexec/app.hpp"
#include "webexec/config.hpp"

namespace webexec::detail {
namespace {

nlohmann::json params_to_json(const RequestContext::Params& params) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [k, v] : params) out.push_back(nlohmann::json::array({k, v}));
  return out;
}

RequestContext::Params params_from_json(const nlohmann::json& json) {
  RequestContext::Params out;
  for (const auto& pair : json)
    out.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::string>());
  return out;
}

template <typename T>
bool put(nlohmann::json& out, const std::string& key, const std::any& value, const char* type) {
  if (const T* v = std::any_cast<T>(&value)) {
    out[key] = {{"type", type}, {"value", *v}};
    return true;
  }
  return false;
}

}  // namespace

nlohmann::json request_to_json(const RequestContext& r) {
  return {{"method", r.method},
          {"path", r.path},
          {"query", params_to_json(r.query)},
          {"form", params_to_json(r.form)},
          {"headers", params_to_json(r.headers)},
          {"body", r.body},
          {"path_groups", r.path_groups},
          {"remote_addr", r.remote_addr},
          {"remote_port", r.remote_port},
          {"request_id", r.request_id}};
}

RequestContext request_from_json(const nlohmann::json& j) {
  RequestContext r;
  r.method = j.at("method").get<std::string>();
  r.path = j.at("path").get<std::string>();
  r.query = params_from_json(j.at("query"));
  r.form = params_from_json(j.at("form"));
  r.headers = params_from_json(j.at("headers"));
  r.body = j.at("body").get<std::string>();
  r.path_groups = j.at("path_groups").get<std::vector<std::string>>();
  r.remote_addr = j.at("remote_addr").get<std::string>();
  r.remote_port = j.at("remote_port").get<int>();
  r.request_id = j.at("request_id").get<std::string>();
  return r;
}

nlohmann::json g_to_json(const G& g) {
  nlohmann::json out = nlohmann::json::object();
  for (const std::string& key : g.keys()) {
    const std::any& v = *g.find(key);
    if (const char* const* s = std::any_cast<const char*>(&v)) {
      out[key] = {{"type", "string"}, {"value", std::string(*s)}};
      continue;
    }
    static_cast<void>(put<std::string>(out, key, v, "string") || put<bool>(out, key, v, "bool") ||
                      put<int>(out, key, v, "int") || put<long>(out, key, v, "long") ||
                      put<long long>(out, key, v, "long long") ||
                      put<unsigned>(out, key, v, "unsigned") ||
                      put<unsigned long>(out, key, v, "unsigned long") ||
                      put<unsigned long long>(out, key, v, "unsigned long long") ||
                      put<double>(out, key, v, "double") || put<float>(out, key, v, "float") ||
                      put<nlohmann::json>(out, key, v, "json"));
  }
  return out;
}

G g_from_json(const nlohmann::json& json) {
  G g;
  for (const auto& [key, entry] : json.items()) {
    const std::string type = entry.at("type").get<std::string>();
    const nlohmann::json& v = entry.at("value");
    if (type == "string") {
      g.set(key, v.get<std::string>());
    } else if (type == "bool") {
      g.set(key, v.get<bool>());
    } else if (type == "int") {
      g.set(key, v.get<int>());
    } else if (type == "long") {
      g.set(key, v.get<long>());
    } else if (type == "long long") {
      g.set(key, v.get<long long>());
    } else if (type == "unsigned") {
      g.set(key, v.get<unsigned>());
    } else if (type == "unsigned long") {
      g.set(key, v.get<unsigned long>());
    } else if (type == "unsigned long long") {
      g.set(key, v.get<unsigned long long>());
    } else if (type == "double") {
      g.set(key, v.get<double>());
    } else if (type == "float") {
      g.set(key, v.get<float>());
    } else {
      g.set(key, v);
    }
  }
  return g;
}

nlohmann::json config_to_json(const Config& config) {
  nlohmann::json out = nlohmann::json::object();
  for (const std::string& key : config.keys()) {
    const auto value = config.get(key);
    if (!value) continue;
    std::visit([&](const auto& v) { out[key] = v; }, *value);
  }
  return out;
}

void config_from_json(const nlohmann::json& json, Config& config) {
  for (const auto& [key, value] : json.items()) {
    if (value.is_boolean()) {
      config.set(key, value.get<bool>());
    } else if (value.is_number_integer()) {
      config.set(key, value.get<std::int64_t>());
    } else if (value.is_string()) {
      config.set(key, value.get<std::string>());
    }
  }
}

nlohmann::json app_to_json(const App& app) {
  return {{"name", app.name()}, {"config", config_to_json(app.config())}};
}

nlohmann::json context_to_json(const TaskContext& ctx, const nlohmann::json* app_json) {
  // An object from the start: operator[] on a null json makes it an object before
  // allocating the map, so a failed allocation left an object with no map (nlohmann's
  // invariant assertion then aborted in debug builds).
  nlohmann::json out = nlohmann::json::object();
  if (const App* app = ctx.app()) {
    out["app"] = app_json != nullptr ? *app_json : app_to_json(*app);
  } else {
    out["app"] = nullptr;
    const char* reason = ctx.no_app_reason();
    out["no_app_reason"] = reason != nullptr ? reason : "";
  }
  out["request"] = ctx.request() != nullptr ? request_to_json(*ctx.request()) : nlohmann::json();
  out["g"] = g_to_json(ctx.current_g());
  return out;
}

}  // namespace webexec::detail
