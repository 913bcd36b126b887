# check_package.cmake: run by the ctest test `package.find_package` as `cmake -P`.
#
# 1. Installs the webexec build tree into a fresh prefix.
# 2. Moves that prefix elsewhere (the original path stops existing), proving the
#    installed CMake package is relocatable, and checks that no installed CMake file
#    mentions the original prefix, the build tree or the source tree.
# 3. Configures, builds and runs tests/package/consumer against the moved prefix with
#    find_package(webexec CONFIG REQUIRED), using the same generator, compiler, build
#    type and (sanitizer) flags as the build under test.
# 4. Does the same with tests/package/core_consumer, which uses webexec::core alone
#    with pkg-config hidden (CMAKE_DISABLE_FIND_PACKAGE_PkgConfig): once with
#    COMPONENTS core, once with no components.
#
# Inputs (-D): WEBEXEC_BUILD_DIR, WEBEXEC_SOURCE_DIR, CONSUMER_SOURCE_DIR, WORK_DIR,
# CONFIG, GENERATOR, MAKE_PROGRAM, CXX_COMPILER, CXX_FLAGS, EXE_LINKER_FLAGS,
# SHARED_LINKER_FLAGS.
cmake_minimum_required(VERSION 3.25)

foreach(_var IN ITEMS WEBEXEC_BUILD_DIR WEBEXEC_SOURCE_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "check_package.cmake: -D${_var}=... is required")
  endif()
endforeach()

# run_step(<description> COMMAND <args>...): runs a command, fails on non-zero exit.
function(run_step description)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "COMMAND")
  message(STATUS "package check: ${description}")
  execute_process(COMMAND ${arg_COMMAND} RESULT_VARIABLE _result)
  if(NOT _result EQUAL 0)
    message(FATAL_ERROR "package check: '${description}' failed (${_result}).\n"
                        "Command: ${arg_COMMAND}")
  endif()
endfunction()

set(_install_prefix "${WORK_DIR}/install/prefix")
set(_moved_prefix "${WORK_DIR}/relocated/moved-prefix")

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/install" "${WORK_DIR}/relocated")

set(_config_args)
if(NOT "${CONFIG}" STREQUAL "")
  set(_config_args --config "${CONFIG}")
endif()

# 1. Install into a fresh prefix.
run_step("install ${WEBEXEC_BUILD_DIR} into ${_install_prefix}"
  COMMAND "${CMAKE_COMMAND}" --install "${WEBEXEC_BUILD_DIR}" --prefix "${_install_prefix}"
          ${_config_args})

# 2. Relocate it: the original prefix no longer exists afterwards.
file(RENAME "${_install_prefix}" "${_moved_prefix}")
if(EXISTS "${_install_prefix}")
  message(FATAL_ERROR "package check: ${_install_prefix} still exists after the move")
endif()
message(STATUS "package check: moved the prefix to ${_moved_prefix}")

file(GLOB_RECURSE _package_files "${_moved_prefix}/*.cmake")
if(NOT _package_files)
  message(FATAL_ERROR "package check: no CMake package files were installed")
endif()
foreach(_file IN LISTS _package_files)
  file(READ "${_file}" _content)
  foreach(_forbidden IN ITEMS "${_install_prefix}" "${WEBEXEC_BUILD_DIR}" "${WEBEXEC_SOURCE_DIR}")
    string(FIND "${_content}" "${_forbidden}" _pos)
    if(NOT _pos EQUAL -1)
      message(FATAL_ERROR "package check: ${_file} contains the absolute path "
                          "'${_forbidden}'; the package is not relocatable")
    endif()
  endforeach()
endforeach()
# Target properties may only use paths relative to the package (${_IMPORT_PREFIX}); a
# literal absolute path (e.g. a hard-coded CMAKE_INSTALL_PREFIX) breaks relocation.
file(GLOB_RECURSE _target_files "${_moved_prefix}/webexec*Targets*.cmake")
if(NOT _target_files)
  message(FATAL_ERROR "package check: no webexec*Targets.cmake was installed")
endif()
foreach(_file IN LISTS _target_files)
  file(STRINGS "${_file}" _property_lines REGEX "^[ \t]*(INTERFACE|IMPORTED)_[A-Z_]+[ \t]")
  foreach(_line IN LISTS _property_lines)
    if(_line MATCHES "(^|\"|;)/")
      message(FATAL_ERROR "package check: ${_file} has an absolute path in a target "
                          "property; the package is not relocatable:\n  ${_line}")
    endif()
  endforeach()
endforeach()

# consumer_check(<name> <source dir> <executable> [<extra configure args>...]):
# configures, builds and runs one consumer project against the moved prefix.
function(consumer_check name source_dir executable)
  set(_build "${WORK_DIR}/${name}-build")
  set(_configure_args
    -S "${source_dir}"
    -B "${_build}"
    -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${_moved_prefix}"
    "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}"
    "-DCMAKE_SHARED_LINKER_FLAGS=${SHARED_LINKER_FLAGS}"
    "-DWEBEXEC_EXPECTED_PREFIX=${_moved_prefix}"
    ${ARGN}
  )
  if(NOT "${CXX_COMPILER}" STREQUAL "")
    list(APPEND _configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
  endif()
  if(NOT "${MAKE_PROGRAM}" STREQUAL "")
    list(APPEND _configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  if(NOT "${CONFIG}" STREQUAL "")
    list(APPEND _configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
  endif()

  run_step("configure ${name}" COMMAND "${CMAKE_COMMAND}" ${_configure_args})
  run_step("build ${name}" COMMAND "${CMAKE_COMMAND}" --build "${_build}" ${_config_args})
  run_step("run ${name}" COMMAND "${_build}/bin/${executable}")
endfunction()

# 3. The full consumer: find_package(webexec CONFIG REQUIRED), links webexec::webexec.
consumer_check(consumer "${CONSUMER_SOURCE_DIR}" webexec_consumer)

# 4. Core-only consumers with pkg-config hidden (so cpp-httplib cannot be found):
#    find_package(webexec COMPONENTS core) and find_package(webexec) with no components
#    must both succeed without the httplib component's dependencies.
set(_core_consumer_dir "${CMAKE_CURRENT_LIST_DIR}/core_consumer")
consumer_check(core-consumer "${_core_consumer_dir}" webexec_core_consumer
  "-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON" "-DWEBEXEC_CONSUMER_COMPONENTS=core")
consumer_check(core-consumer-no-components "${_core_consumer_dir}" webexec_core_consumer
  "-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON" "-DWEBEXEC_CONSUMER_COMPONENTS=")

message(STATUS "package check: OK")
