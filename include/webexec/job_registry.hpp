/// `JobRegistry`: jobs callable by name with JSON arguments, so they can run
/// in another process (EXECUTOR_TYPE=process) or, later, another machine.
///
/// A job is a function whose arguments and result convert to and from
/// `nlohmann::json` by the usual `to_json`/`from_json` convention, so user
/// types work the usual way. Register it by name at namespace scope, where
/// worker processes see it:
///
/// ```
/// int resize(std::string path, int width) { ... }
/// WEBEXEC_REGISTER_JOB("resize", resize);
///
/// // or through an executor, also at namespace scope:
/// webexec::Executor executor;                       // init_app(app) later
/// auto resize_job = executor.job("resize", resize);
/// ```
///
/// The registry knows nothing about processes; the process engine (and the
/// Redis engine later) call `invoke(name, args)` on the worker side.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeindex>
#include <utility>

#include <nlohmann/json.hpp>

#include "webexec/detail/export.hpp"
#include "webexec/detail/mutex.hpp"

namespace webexec {

namespace detail {

template <typename Sig>
struct JobSignature;

template <typename R, typename... Args>
struct JobSignature<std::function<R(Args...)>> {
  using result = R;
  using args = std::tuple<std::decay_t<Args>...>;
  static constexpr std::size_t arity = sizeof...(Args);
};

/// The signature of a function pointer or a lambda with one call operator.
template <typename Fn>
using job_signature_t = JobSignature<decltype(std::function{std::declval<Fn>()})>;

/// The job's arguments from `args`, which it may move from: a string
/// argument (or a JSON one) is moved out rather than copied, so a large
/// payload is not copied once more in the worker.
template <typename Tuple, std::size_t... I>
Tuple args_from_json(std::string_view name, nlohmann::json& args,
                     std::index_sequence<I...> /*indices*/) {
  [[maybe_unused]] auto one = [&]<std::size_t K>(std::integral_constant<std::size_t, K>) {
    using T = std::tuple_element_t<K, Tuple>;
    try {
      nlohmann::json& element = args.at(K);
      if constexpr (std::is_same_v<T, std::string>) {
        if (element.is_string()) return T(std::move(element.get_ref<std::string&>()));
      } else if constexpr (std::is_same_v<T, nlohmann::json>) {
        return T(std::move(element));
      }
      return element.template get<T>();
    } catch (const std::exception& e) {  // nlohmann's, or a user from_json's
      throw std::invalid_argument("argument " + std::to_string(K + 1) + " of job '" +
                                  std::string(name) + "' does not deserialize: " + e.what());
    }
  };
  return Tuple{one(std::integral_constant<std::size_t, I>{})...};
}

}  // namespace detail

/// Serialises the arguments of a job call: a JSON array, one element each.
template <typename... Args>
nlohmann::json job_arguments(const Args&... args) {
  nlohmann::json out = nlohmann::json::array();
  (out.push_back(nlohmann::json(args)), ...);
  return out;
}

/// Name -> function taking and returning JSON. Thread-safe.
class WEBEXEC_API JobRegistry {
 public:
  /// Calls a job with its arguments, which it may move from.
  using Invoker = std::function<nlohmann::json(nlohmann::json& args)>;

  /// The process-wide registry.
  static JobRegistry& global();

  /// Registers `fn` under `name`. Registering the same function under the
  /// same name again is a no-op (two executors may wrap one job).
  /// Throws: `std::invalid_argument` if `name` is empty or already taken by
  /// another function.
  template <typename Fn>
  void add(std::string name, Fn fn) {
    using Sig = detail::job_signature_t<Fn>;
    using R = typename Sig::result;
    using Args = typename Sig::args;
    Invoker invoke = [fn = std::move(fn), name](nlohmann::json& args) -> nlohmann::json {
      if (!args.is_array() || args.size() != Sig::arity) {
        throw std::invalid_argument(
            "job '" + name + "' takes " + std::to_string(Sig::arity) + " argument(s), got " +
            (args.is_array() ? std::to_string(args.size()) : std::string("a non-array payload")));
      }
      auto tuple = detail::args_from_json<Args>(name, args, std::make_index_sequence<Sig::arity>{});
      if constexpr (std::is_void_v<R>) {
        std::apply(fn, std::move(tuple));
        return nullptr;
      } else {
        return nlohmann::json(std::apply(fn, std::move(tuple)));
      }
    };
    const void* address = nullptr;
    if constexpr (std::is_pointer_v<Fn> && std::is_function_v<std::remove_pointer_t<Fn>>) {
      address = reinterpret_cast<const void*>(fn);  // NOLINT: identity of a function
    }
    add_erased(std::move(name), std::move(invoke), typeid(Fn), address);
  }

  /// The name a function pointer was registered under, or "" (lets a
  /// process executor accept `submit(resize, ...)` for a registered `resize`).
  template <typename R, typename... A>
  [[nodiscard]] std::string name_of(R (*fn)(A...)) const {
    return name_of_address(reinterpret_cast<const void*>(fn));  // NOLINT: identity only
  }

  /// True if `name` is registered.
  [[nodiscard]] bool contains(std::string_view name) const;

  /// The registration number of `name` (they count up from 1), or 0.
  [[nodiscard]] std::uint64_t sequence(std::string_view name) const;

  /// The number of registrations so far.
  [[nodiscard]] std::uint64_t size() const;

  /// Calls job `name` with `args` (a JSON array).
  /// Throws: `std::invalid_argument` for an unknown job, a wrong argument
  /// count or an argument that does not deserialize; whatever the job throws.
  nlohmann::json invoke(std::string_view name, const nlohmann::json& args) const;

  /// The same, moving string (and JSON) arguments out of `args` instead of
  /// copying them (the worker side of the process engine).
  nlohmann::json invoke(std::string_view name, nlohmann::json&& args) const;

 private:
  struct Entry {
    Invoker invoke;
    std::type_index type;
    std::uint64_t sequence;
    const void* address;  // for function pointers, else null
  };
  void add_erased(std::string name, Invoker invoke, const std::type_info& type,
                  const void* address);
  [[nodiscard]] std::string name_of_address(const void* address) const;

  mutable detail::Mutex mutex_;
  std::map<std::string, Entry, std::less<>> jobs_ WEBEXEC_GUARDED_BY(mutex_);
  std::map<const void*, std::string> names_by_address_ WEBEXEC_GUARDED_BY(mutex_);
};

}  // namespace webexec

#define WEBEXEC_JOB_CONCAT_INNER(a, b) a##b
#define WEBEXEC_JOB_CONCAT(a, b) WEBEXEC_JOB_CONCAT_INNER(a, b)

/// Registers `fn` as job `name` at namespace scope, e.g.
/// `WEBEXEC_REGISTER_JOB("resize", resize);`.
#define WEBEXEC_REGISTER_JOB(name, fn)                                            \
  [[maybe_unused]] static const bool WEBEXEC_JOB_CONCAT(webexec_job_, __LINE__) = \
      (::webexec::JobRegistry::global().add((name), (fn)), true)
