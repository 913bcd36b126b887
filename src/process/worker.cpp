// The loop a worker process runs: read a job request, run the registered
// job inside the context that came with it, write the result.
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/detail/context_json.hpp"
#include "webexec/detail/demangle.hpp"
#include "webexec/detail/process_pool.hpp"
#include "webexec/job_registry.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/wire.hpp"

namespace webexec::process::detail {
namespace {

int channel_fd = -1;
webexec::detail::StartSlot* start_slots = nullptr;

nlohmann::json progress_to_json(const Progress& p) {
  nlohmann::json out = {{"fraction", p.fraction}, {"message", p.message}};
  if (p.done) out["done"] = *p.done;
  if (p.total) out["total"] = *p.total;
  return out;
}

nlohmann::json run_request(int fd, const nlohmann::json& request) {
  const nlohmann::json& id = request.at("id");
  const nlohmann::json& ctx = request.at("ctx");
  // The app of the previous job is reused while the host sends the same
  // name and config and no job changed it: rebuilding costs more than a
  // small job.
  static std::unique_ptr<App> app;
  static nlohmann::json app_json;
  static std::uint64_t app_version = 0;
  static std::string no_app_reason;  // the block keeps a pointer; one job at a time
  App* current = nullptr;
  if (!ctx.at("app").is_null()) {
    if (!app || app->config().version() != app_version || ctx["app"] != app_json) {
      app.reset();
      app = std::make_unique<App>(ctx["app"].at("name").get<std::string>());
      webexec::detail::config_from_json(ctx["app"].at("config"), app->config());
      app_json = ctx["app"];
      app_version = app->config().version();
    }
    current = app.get();
  } else {
    no_app_reason = ctx.value("no_app_reason", std::string());
  }
  std::shared_ptr<const RequestContext> snapshot;
  if (!ctx.at("request").is_null()) {
    snapshot =
        std::make_shared<const RequestContext>(webexec::detail::request_from_json(ctx["request"]));
  }
  webexec::detail::TaskContext task(
      webexec::detail::make_block(current, no_app_reason.c_str(), std::move(snapshot),
                                  webexec::detail::g_from_json(ctx.at("g"))));
  // Progress has somewhere to go only for stored futures.
  std::shared_ptr<webexec::detail::ProgressSlot> progress;
  if (request.value("progress", false)) {
    progress = std::make_shared<webexec::detail::ProgressSlot>([fd, id](const Progress& p) {
      write_frame(fd, {{"id", id}, {"progress", progress_to_json(p)}});
    });
  }
  task.set_job(request.value("label", std::string()), std::move(progress));
  nlohmann::json result;
  webexec::detail::run_in_context(task, [&] {
    result = JobRegistry::global().invoke(request.at("job").get<std::string>(), request.at("args"));
  });
  return result;
}

}  // namespace

int current_worker_fd() noexcept { return channel_fd; }

void worker_main(int fd, webexec::detail::StartSlot* slots) {
  channel_fd = fd;
  start_slots = slots;
  FrameBuffer buffer;
  for (;;) {
    bool garbage = false;
    auto request = read_frame(fd, buffer, garbage);
    if (!request) ::_exit(garbage ? 3 : 0);  // EOF: the host retired or left us
    nlohmann::json reply = {{"id", request->value("id", nlohmann::json())}};
    // Claim the job's start slot: if the host cancelled it while it waited
    // in this socket, skip it.
    const auto slot = request->value("slot", std::size_t{0});
    if (slot >= webexec::detail::kSlotsPerWorker) ::_exit(3);
    std::uint32_t expected = webexec::detail::kSlotPending;
    if (!start_slots[slot].compare_exchange_strong(expected, webexec::detail::kSlotStarted,
                                                   std::memory_order_acq_rel)) {
      reply["skipped"] = true;
      if (!write_frame(fd, reply)) ::_exit(0);
      continue;
    }
    // Tell the host the job started: if this process dies from now on, the
    // job failed here; if it dies before, the host runs the job elsewhere.
    if (!write_frame(fd, {{"id", reply["id"]}, {"started", true}})) ::_exit(0);
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
