/// webexec version, parsed by CMake from the three macros below.
#pragma once

#define WEBEXEC_VERSION_MAJOR 0
#define WEBEXEC_VERSION_MINOR 1
#define WEBEXEC_VERSION_PATCH 0

namespace webexec {

/// The library version as "MAJOR.MINOR.PATCH".
inline constexpr const char* version_string = "0.1.0";

}  // namespace webexec
