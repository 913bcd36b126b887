#include "webexec/test_request_context.hpp"

#include <memory>
#include <utility>

namespace webexec {

/// The request scope a TestRequestContext makes current: its snapshot is
/// built up front (the request is complete already).
class TestRequestContext::Scope final : public detail::RequestScope {
 public:
  Scope(App* app, RequestContext request)
      : RequestScope(app), snapshot_(std::make_shared<const RequestContext>(std::move(request))) {}

  [[nodiscard]] const RequestContext& request() const noexcept { return *snapshot_; }

 protected:
  [[nodiscard]] std::shared_ptr<const RequestContext> build_snapshot() const override {
    return snapshot_;
  }

 private:
  std::shared_ptr<const RequestContext> snapshot_;
};

namespace {

RequestContext with_defaults(RequestContext request) {
  if (request.method.empty()) request.method = "GET";
  if (request.path.empty()) request.path = "/";
  if (request.path_groups.empty()) request.path_groups = {request.path};
  if (request.remote_addr.empty()) request.remote_addr = "127.0.0.1";
  if (request.request_id.empty()) request.request_id = "test";
  return request;
}

}  // namespace

TestRequestContext::TestRequestContext(App& app, RequestContext request)
    : scope_(std::make_unique<Scope>(&app, with_defaults(std::move(request)))),
      previous_(std::exchange(detail::ambient().request, scope_.get())) {}

TestRequestContext::~TestRequestContext() { detail::ambient().request = previous_; }

const RequestContext& TestRequestContext::request() const noexcept { return scope_->request(); }

G& TestRequestContext::g() noexcept { return scope_->g(); }

}  // namespace webexec
