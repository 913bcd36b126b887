// The loop a worker process runs: read a job request, run the registered
// job inside the context that came with it, write the result.
#include <unistd.h>

#include <memory>
#include <string>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/detail/context_json.hpp"
#include "webexec/detail/demangle.hpp"
#include "webexec/job_registry.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/wire.hpp"

namespace webexec::process::detail {
namespace {

int channel_fd = -1;

nlohmann::json progress_to_json(const Progress& p) {
  nlohmann::json out = {{"fraction", p.fraction}, {"message", p.message}};
  if (p.done) out["done"] = *p.done;
  if (p.total) out["total"] = *p.total;
  return out;
}

nlohmann::json run_request(int fd, const nlohmann::json& request) {
  const nlohmann::json& id = request.at("id");
  const nlohmann::json& ctx = request.at("ctx");
  std::unique_ptr<App> app;
  static std::string no_app_reason;  // the block keeps a pointer; one job at a time
  if (!ctx.at("app").is_null()) {
    app = std::make_unique<App>(ctx["app"].at("name").get<std::string>());
    webexec::detail::config_from_json(ctx["app"].at("config"), app->config());
  } else {
    no_app_reason = ctx.value("no_app_reason", std::string());
  }
  std::shared_ptr<const RequestContext> snapshot;
  if (!ctx.at("request").is_null()) {
    snapshot =
        std::make_shared<const RequestContext>(webexec::detail::request_from_json(ctx["request"]));
  }
  webexec::detail::TaskContext task(
      webexec::detail::make_block(app.get(), no_app_reason.c_str(), std::move(snapshot),
                                  webexec::detail::g_from_json(ctx.at("g"))));
  task.set_job(request.value("label", std::string()),
               std::make_shared<webexec::detail::ProgressSlot>([fd, id](const Progress& p) {
                 write_frame(fd, {{"id", id}, {"progress", progress_to_json(p)}});
               }));
  nlohmann::json result;
  webexec::detail::run_in_context(task, [&] {
    result = JobRegistry::global().invoke(request.at("job").get<std::string>(), request.at("args"));
  });
  return result;
}

}  // namespace

int current_worker_fd() noexcept { return channel_fd; }

void worker_main(int fd) {
  channel_fd = fd;
  FrameBuffer buffer;
  for (;;) {
    bool garbage = false;
    auto request = read_frame(fd, buffer, garbage);
    if (!request) ::_exit(garbage ? 3 : 0);  // EOF: the host retired or left us
    nlohmann::json reply = {{"id", request->value("id", nlohmann::json())}};
    try {
      reply["result"] = run_request(fd, *request);
      reply["ok"] = true;
    } catch (...) {
      const auto error = std::current_exception();
      reply["ok"] = false;
      reply["error"] = {{"type", webexec::detail::exception_type(error)},
                        {"message", webexec::detail::what(error)}};
    }
    if (!write_frame(fd, reply)) ::_exit(0);
  }
}

}  // namespace webexec::process::detail
