#include "webexec/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>
#include <string>

namespace webexec {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string describe(std::string_view key, const ConfigValue& value) {
  std::string out(key);
  out += "=";
  if (std::holds_alternative<std::string>(value)) {
    out += "'" + std::get<std::string>(value) + "'";
  } else {
    out += to_string(value);
  }
  return out;
}

}  // namespace

std::string to_string(const ConfigValue& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&value)) return std::to_string(*i);
  return std::get<bool>(value) ? "true" : "false";
}

bool parse_bool(std::string_view key, const ConfigValue& value) {
  if (const auto* b = std::get_if<bool>(&value)) return *b;
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    if (*i == 0 || *i == 1) return *i == 1;
  } else {
    const std::string s = lower(std::get<std::string>(value));
    if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  }
  throw std::invalid_argument("invalid boolean " + describe(key, value) +
                              ": expected true/false, 1/0, yes/no or on/off");
}

std::int64_t parse_int(std::string_view key, const ConfigValue& value, std::int64_t min,
                       std::int64_t max) {
  std::int64_t result = 0;
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    result = *i;
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    const char* first = s->data();
    const char* last = s->data() + s->size();
    if (first != last && *first == '+') ++first;
    const auto [end, ec] = std::from_chars(first, last, result);
    if (ec == std::errc::result_out_of_range) {
      throw std::out_of_range("integer out of range: " + describe(key, value));
    }
    if (ec != std::errc() || end != last || s->empty()) {
      throw std::invalid_argument("invalid integer " + describe(key, value));
    }
  } else {
    throw std::invalid_argument("invalid integer " + describe(key, value) +
                                ": a boolean is not an integer");
  }
  if (result < min || result > max) {
    throw std::out_of_range("integer out of range: " + describe(key, value) + " (allowed " +
                            std::to_string(min) + " to " + std::to_string(max) + ")");
  }
  return result;
}

Config::Config(const Config& other) {
  const std::lock_guard lock(other.mutex_);
  values_ = other.values_;
}

Config& Config::operator=(const Config& other) {
  if (this == &other) return *this;
  auto copy = [&] {
    const std::lock_guard lock(other.mutex_);
    return other.values_;
  }();
  const std::lock_guard lock(mutex_);
  values_ = std::move(copy);
  version_.fetch_add(1, std::memory_order_release);
  return *this;
}

void Config::set_value(std::string key, ConfigValue value) {
  const std::lock_guard lock(mutex_);
  values_.insert_or_assign(std::move(key), std::move(value));
  version_.fetch_add(1, std::memory_order_release);
}

ConfigValue Config::setdefault_value(std::string key, ConfigValue value) {
  const std::lock_guard lock(mutex_);
  const auto [it, inserted] = values_.try_emplace(std::move(key), std::move(value));
  if (inserted) version_.fetch_add(1, std::memory_order_release);
  return it->second;
}

std::optional<ConfigValue> Config::get(std::string_view key) const {
  const std::lock_guard lock(mutex_);
  const auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

bool Config::contains(std::string_view key) const {
  const std::lock_guard lock(mutex_);
  return values_.find(key) != values_.end();
}

bool Config::erase(std::string_view key) {
  const std::lock_guard lock(mutex_);
  const auto it = values_.find(key);
  if (it == values_.end()) return false;
  values_.erase(it);
  version_.fetch_add(1, std::memory_order_release);
  return true;
}

std::vector<std::string> Config::keys() const {
  const std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  out.reserve(values_.size());
  for (const auto& [key, value] : values_) out.push_back(key);
  return out;
}

std::optional<std::string> Config::get_string(std::string_view key) const {
  auto value = get(key);
  if (!value) return std::nullopt;
  return to_string(*value);
}

std::optional<bool> Config::get_bool(std::string_view key) const {
  auto value = get(key);
  if (!value) return std::nullopt;
  return parse_bool(key, *value);
}

std::optional<std::int64_t> Config::get_int(std::string_view key, std::int64_t min,
                                            std::int64_t max) const {
  auto value = get(key);
  if (!value) return std::nullopt;
  return parse_int(key, *value, min, max);
}

}  // namespace webexec
