#include "webexec/job_registry.hpp"

#include "webexec/detail/demangle.hpp"

namespace webexec {

JobRegistry& JobRegistry::global() {
  static JobRegistry registry;
  return registry;
}

void JobRegistry::add_erased(std::string name, Invoker invoke, const std::type_info& type,
                             const void* address) {
  if (name.empty()) throw std::invalid_argument("a job name must not be empty");
  const detail::MutexLock lock(mutex_);
  if (const auto it = jobs_.find(name); it != jobs_.end()) {
    // The same function again (two executors wrapping one job) is fine; a
    // different function of the same type (two function pointers) is not.
    if (it->second.type == std::type_index(type) && it->second.address == address) return;
    if (it->second.type == std::type_index(type)) {
      throw std::invalid_argument("job '" + name +
                                  "' is already registered for another function of the same "
                                  "type");
    }
    throw std::invalid_argument("job '" + name + "' is already registered for a " +
                                detail::demangle(it->second.type.name()) + "; cannot register a " +
                                detail::demangle(type.name()));
  }
  const std::uint64_t sequence = jobs_.size() + 1;
  if (address != nullptr) names_by_address_.emplace(address, name);
  jobs_.emplace(std::move(name),
                Entry{std::move(invoke), std::type_index(type), sequence, address});
}

std::string JobRegistry::name_of_address(const void* address) const {
  const detail::MutexLock lock(mutex_);
  const auto it = names_by_address_.find(address);
  return it == names_by_address_.end() ? std::string() : it->second;
}

bool JobRegistry::contains(std::string_view name) const {
  const detail::MutexLock lock(mutex_);
  return jobs_.find(name) != jobs_.end();
}

std::uint64_t JobRegistry::sequence(std::string_view name) const {
  const detail::MutexLock lock(mutex_);
  const auto it = jobs_.find(name);
  return it == jobs_.end() ? 0 : it->second.sequence;
}

std::uint64_t JobRegistry::size() const {
  const detail::MutexLock lock(mutex_);
  return jobs_.size();
}

nlohmann::json JobRegistry::invoke(std::string_view name, const nlohmann::json& args) const {
  return invoke(name, nlohmann::json(args));
}

nlohmann::json JobRegistry::invoke(std::string_view name, nlohmann::json&& args) const {
  Invoker invoke;
  {
    const detail::MutexLock lock(mutex_);
    const auto it = jobs_.find(name);
    if (it == jobs_.end()) {
      throw std::invalid_argument("no job named '" + std::string(name) + "' is registered");
    }
    invoke = it->second.invoke;
  }
  return invoke(args);
}

}  // namespace webexec
