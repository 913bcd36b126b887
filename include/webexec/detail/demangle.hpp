/// Readable type names and exception messages for error reports (not API).
#pragma once

#include <exception>
#include <string>

#include "webexec/detail/export.hpp"

namespace webexec::detail {

/// The demangled form of a `typeid(...).name()`.
WEBEXEC_API std::string demangle(const char* mangled);

/// `what()` of the exception in `error`, or "unknown exception".
WEBEXEC_API std::string what(const std::exception_ptr& error);

/// The demangled dynamic type of the exception in `error`.
WEBEXEC_API std::string exception_type(const std::exception_ptr& error);

}  // namespace webexec::detail
