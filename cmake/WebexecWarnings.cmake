# webexec_set_warnings(<target>)
#
# Applies the project's warning flags to <target> as PRIVATE compile options, so they
# never leak to consumers. -Werror is deliberately absent: it comes only from presets
# (CMAKE_COMPILE_WARNING_AS_ERROR in the `dev` preset).
include_guard(GLOBAL)

function(webexec_set_warnings target)
  if(NOT TARGET "${target}")
    message(FATAL_ERROR "webexec_set_warnings: '${target}' is not a target")
  endif()
  if(CMAKE_CXX_COMPILER_ID MATCHES "^(GNU|Clang|AppleClang)$")
    target_compile_options("${target}" PRIVATE
      -Wall
      -Wextra
      -Wpedantic
      -Wshadow
      -Wconversion
      -Wsign-conversion
      -Wnon-virtual-dtor
      -Wold-style-cast
      -Woverloaded-virtual
      -Wnull-dereference
    )
  endif()
endfunction()
