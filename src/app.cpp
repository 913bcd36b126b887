#include "webexec/app.hpp"

#include <cstdio>
#include <utility>

#include "webexec/detail/demangle.hpp"

namespace webexec {

std::string describe(const ErrorReport& report) {
  std::string out = report.origin.empty() ? "task" : report.origin;
  if (!report.key.empty()) out += " '" + report.key + "'";
  out += " of executor '" + report.executor + "' failed: ";
  out += report.message;
  return out;
}

const char* to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      break;
  }
  return "error";
}

App::App(std::string name) : name_(std::move(name)) {}

App::~App() {
  std::vector<std::pair<const void*, std::function<void()>>> callbacks;
  {
    const detail::MutexLock lock(mutex_);
    callbacks.swap(on_destroy_);
  }
  for (auto& [owner, fn] : callbacks) {
    try {
      fn();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
    }
  }
}

void App::on_destroy(const void* owner, std::function<void()> fn) {
  const detail::MutexLock lock(mutex_);
  on_destroy_.emplace_back(owner, std::move(fn));
}

void App::forget_on_destroy(const void* owner) {
  const detail::MutexLock lock(mutex_);
  std::erase_if(on_destroy_, [owner](const auto& entry) { return entry.first == owner; });
}

void App::set_extension_erased(std::string name, std::shared_ptr<void> object,
                               const std::type_info& type) {
  const detail::MutexLock lock(mutex_);
  extensions_.insert_or_assign(std::move(name), Extension{std::move(object), type});
}

bool App::add_extension_erased(std::string name, std::shared_ptr<void> object,
                               const std::type_info& type) {
  const detail::MutexLock lock(mutex_);
  return extensions_.try_emplace(std::move(name), Extension{std::move(object), type}).second;
}

bool App::remove_extension(std::string_view name, const void* object) {
  const detail::MutexLock lock(mutex_);
  const auto it = extensions_.find(name);
  if (it == extensions_.end() || it->second.object.get() != object) return false;
  extensions_.erase(it);
  return true;
}

std::shared_ptr<void> App::extension_erased(std::string_view name,
                                            const std::type_info& type) const {
  const detail::MutexLock lock(mutex_);
  const auto it = extensions_.find(name);
  if (it == extensions_.end()) return nullptr;
  if (it->second.type != type) {
    throw std::invalid_argument("extension " + quote_value(name) + " of app " + quote_value(name_) +
                                " is a " + detail::demangle(it->second.type.name()) + ", not a " +
                                detail::demangle(type.name()));
  }
  return it->second.object;
}

bool App::has_extension(std::string_view name) const {
  const detail::MutexLock lock(mutex_);
  return extensions_.find(name) != extensions_.end();
}

bool App::remove_extension(std::string_view name) {
  const detail::MutexLock lock(mutex_);
  const auto it = extensions_.find(name);
  if (it == extensions_.end()) return false;
  extensions_.erase(it);
  return true;
}

std::vector<std::string> App::extension_names() const {
  const detail::MutexLock lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [name, ext] : extensions_) out.push_back(name);
  return out;
}

void App::teardown_appcontext(TeardownHook hook) {
  const detail::MutexLock lock(mutex_);
  auto hooks = teardown_ ? std::make_shared<std::vector<TeardownHook>>(*teardown_)
                         : std::make_shared<std::vector<TeardownHook>>();
  hooks->push_back(std::move(hook));
  teardown_ = std::move(hooks);
  has_teardown_.store(true, std::memory_order_release);
}

void App::do_teardown_appcontext(std::exception_ptr error) const noexcept {
  if (!has_teardown_.load(std::memory_order_acquire)) return;
  std::shared_ptr<const std::vector<TeardownHook>> hooks;
  {
    const detail::MutexLock lock(mutex_);
    hooks = teardown_;
  }
  for (const auto& hook : *hooks) {
    try {
      hook(error);
    } catch (...) {
      report_error({.origin = "teardown hook",
                    .executor = {},
                    .key = {},
                    .message = detail::what(std::current_exception()),
                    .exception = std::current_exception()});
    }
  }
}

void App::set_error_handler(ErrorHandler handler) {
  auto shared = handler ? std::make_shared<const ErrorHandler>(std::move(handler)) : nullptr;
  const detail::MutexLock lock(mutex_);
  error_handler_ = std::move(shared);
}

void App::report_error(const ErrorReport& report) const noexcept {
  try {
    std::shared_ptr<const ErrorHandler> handler;
    {
      const detail::MutexLock lock(mutex_);
      handler = error_handler_;
    }
    if (handler) {
      (*handler)(report);
    } else {
      std::fprintf(stderr, "webexec: app '%s': %s\n", name_.c_str(), describe(report).c_str());
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): reporting must never throw
  }
}

void App::set_logger(Logger logger) {
  auto shared = logger ? std::make_shared<const Logger>(std::move(logger)) : nullptr;
  const detail::MutexLock lock(mutex_);
  logger_ = std::move(shared);
}

void App::log(LogLevel level, std::string_view message) const noexcept {
  try {
    std::shared_ptr<const Logger> logger;
    {
      const detail::MutexLock lock(mutex_);
      logger = logger_;
    }
    if (logger) {
      (*logger)(level, message);
      return;
    }
    // Control characters only (backslashes stay): already escaped text is
    // not escaped twice, and the line stays one line.
    std::string line;
    for (const char c : message) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7F) {
        line += escape_text(std::string_view(&c, 1));
      } else {
        line += c;
      }
    }
    std::fprintf(stderr, "webexec: app '%s': %s: %s\n", escape_text(name_, SIZE_MAX).c_str(),
                 to_string(level), line.c_str());
  } catch (...) {  // NOLINT(bugprone-empty-catch): logging must never throw
  }
}

}  // namespace webexec
