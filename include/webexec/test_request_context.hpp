/// `TestRequestContext`: Flask's `app.test_request_context(...)`, to
/// unit-test code that uses `current_request()`, `g()` and `current_app()`
/// without a web server.
///
/// While it lives, a `TestRequestContext` is the request being handled on
/// the thread that made it: the request functions see it, and tasks
/// submitted from it capture it exactly as they would a real request's
/// (its snapshot, and a copy of its `g`). Fields left empty get defaults:
/// method `GET`, path `/`, path groups `{path}`, peer `127.0.0.1`, request
/// id `test`. Nothing is parsed: give the query and form as parameters.
///
/// Example (a unit test):
/// ```
/// webexec::App app("test");
/// webexec::Executor executor(app);
/// webexec::TestRequestContext ctx(app, {.method = "POST",
///                                       .path = "/reports",
///                                       .query = {{"steps", "3"}},
///                                       .headers = {{"X-User", "alice"}},
///                                       .body = R"({"n": 1})"});
/// webexec::g().set("user", std::string("alice"));
/// auto f = executor.submit([] { return webexec::current_request().path; });
/// assert(f.result() == "/reports");
/// ```
///
/// Thread safety: make, use and destroy it on one thread. Scopes nest: the
/// request that was current before it is current again once it is
/// destroyed. Tasks submitted from it may outlive it (they keep their own
/// snapshot).
#pragma once

#include <memory>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/detail/export.hpp"

namespace webexec {

/// A request made current on this thread for its lifetime. See the file comment.
class WEBEXEC_API TestRequestContext {
 public:
  /// Makes `request` (defaults filled in) the current request of `app` on
  /// this thread. `app` must outlive this object.
  /// Throws: `std::bad_alloc`.
  explicit TestRequestContext(App& app, RequestContext request = {});
  TestRequestContext(const TestRequestContext&) = delete;
  TestRequestContext& operator=(const TestRequestContext&) = delete;
  /// Makes the previously current request (if any) current again.
  ~TestRequestContext();

  /// The request, as `current_request()` returns it while this is current.
  [[nodiscard]] const RequestContext& request() const noexcept;
  /// The request's `g`, as `g()` returns it while this is current.
  [[nodiscard]] G& g() noexcept;

 private:
  class Scope;
  std::unique_ptr<Scope> scope_;
  detail::RequestScope* previous_ = nullptr;
};

}  // namespace webexec
