# Redis tests (label `redis`; the pure parser tests also `unit`), included from
# tests/CMakeLists.txt. Every test that needs a server starts its own throwaway
# redis-server on 127.0.0.1 (tests/redis/redis_server.hpp), never the system service.
if(NOT TARGET webexec_redis)
  return()
endif()
add_library(webexec_redis_test_support STATIC "${CMAKE_CURRENT_LIST_DIR}/redis_server.cpp")
target_include_directories(webexec_redis_test_support PUBLIC "${PROJECT_SOURCE_DIR}/tests")
target_compile_features(webexec_redis_test_support PUBLIC cxx_std_20)
webexec_set_warnings(webexec_redis_test_support)

# gtest_discover_tests cannot pass a two-element LABELS list through; a file run
# after each discovery script relabels the tests it listed (<target>_TESTS).
foreach(_redis_test IN ITEMS url options)
  webexec_add_test(redis_${_redis_test}_test LABEL unit TIMEOUT 60
    SOURCES "${CMAKE_CURRENT_LIST_DIR}/${_redis_test}_test.cpp" LIBRARIES webexec_redis)
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/redis_${_redis_test}_test_labels.cmake"
    "set_tests_properties(\${redis_${_redis_test}_test_TESTS} PROPERTIES LABELS \"redis;unit\")\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES
    "${CMAKE_CURRENT_BINARY_DIR}/redis_${_redis_test}_test_labels.cmake")
endforeach()

foreach(_redis_test IN ITEMS server connection protocol submitter)
  webexec_add_test(redis_${_redis_test}_test LABEL redis TIMEOUT 60
    SOURCES "${CMAKE_CURRENT_LIST_DIR}/${_redis_test}_test.cpp"
    LIBRARIES webexec_redis webexec_redis_test_support)
endforeach()

# A Worker in its own process, for tests that kill -9 or SIGTERM it.
add_executable(redis_test_worker "${CMAKE_CURRENT_LIST_DIR}/test_worker_main.cpp")
target_link_libraries(redis_test_worker PRIVATE webexec_redis)
webexec_set_warnings(redis_test_worker)

webexec_add_test(redis_worker_test LABEL redis TIMEOUT 120
  SOURCES "${CMAKE_CURRENT_LIST_DIR}/worker_test.cpp"
  LIBRARIES webexec_redis webexec_redis_test_support)
target_compile_definitions(redis_worker_test PRIVATE
  "WEBEXEC_REDIS_TEST_WORKER=\"$<TARGET_FILE:redis_test_worker>\"")
add_dependencies(redis_worker_test redis_test_worker)
