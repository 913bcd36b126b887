# webexec_redis: the redis engine's internal pieces (Step 5): the EXECUTOR_REDIS_URL
# parser, the hiredis connection and the job protocol. A static library, not installed
# or exported yet; hiredis (Debian libhiredis-dev 0.14, no CMake target) comes through
# pkg-config and stays PRIVATE, out of every public header (STYLE section 2).
include_guard(GLOBAL)

option(WEBEXEC_WITH_REDIS "Build the redis engine's pieces (Debian libhiredis-dev)"
       ${PROJECT_IS_TOP_LEVEL})
if(NOT WEBEXEC_WITH_REDIS)
  return()
endif()

find_package(PkgConfig REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

add_library(webexec_redis STATIC
  "${PROJECT_SOURCE_DIR}/src/redis/connection.cpp"
  "${PROJECT_SOURCE_DIR}/src/redis/options.cpp"
  "${PROJECT_SOURCE_DIR}/src/redis/payload.cpp"
  "${PROJECT_SOURCE_DIR}/src/redis/protocol.cpp"
  "${PROJECT_SOURCE_DIR}/src/redis/submitter.cpp"
  "${PROJECT_SOURCE_DIR}/src/redis/url.cpp"
  "${PROJECT_SOURCE_DIR}/src/redis/worker.cpp"
)
target_include_directories(webexec_redis PUBLIC "${PROJECT_SOURCE_DIR}/src")
target_link_libraries(webexec_redis PUBLIC webexec_core PRIVATE PkgConfig::HIREDIS)
set_target_properties(webexec_redis PROPERTIES POSITION_INDEPENDENT_CODE ON)
webexec_set_warnings(webexec_redis)
