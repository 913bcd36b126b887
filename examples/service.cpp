// The example web service: Flask-Executor's own example, in C++ on cpp-httplib.
//
//   bash scripts/run-example.sh               # http://127.0.0.1:8080
//   bash scripts/run-example.sh --port 9000   # or WEBEXEC_PORT=9000
//   bash scripts/run-example.sh --threads 256 --no-access-log   # behind nginx (README)
//
//   curl http://127.0.0.1:8080/start-task    -> {"result":"success"}
//   curl http://127.0.0.1:8080/get-result    -> {"status":"RUNNING"} ... then
//                                               {"status":"done","result":"73301874...0507"}
//   curl -i http://127.0.0.1:8080/reports?steps=20   -> 202, Location: /jobs/<key>
//   curl http://127.0.0.1:8080/jobs/<key>             -> state, progress, result
//   curl -X DELETE http://127.0.0.1:8080/jobs/<key>   -> cancels a pending job
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "webexec/http/httplib_adapter.hpp"
#include "webexec/webexec.hpp"

namespace {

/// base**exponent as a decimal string: Python's pow(323, 1235) has 3,099
/// digits, far beyond any built-in type (std::pow gives inf).
std::string big_pow(std::uint32_t base, std::uint32_t exponent) {
  constexpr std::uint64_t kLimb = 1'000'000'000;  // nine decimal digits per limb
  std::vector<std::uint64_t> limbs{1};            // little-endian
  for (std::uint32_t i = 0; i < exponent; ++i) {
    std::uint64_t carry = 0;
    for (auto& limb : limbs) {
      const std::uint64_t v = limb * base + carry;
      limb = v % kLimb;
      carry = v / kLimb;
    }
    while (carry != 0) {
      limbs.push_back(carry % kLimb);
      carry /= kLimb;
    }
  }
  std::string out = std::to_string(limbs.back());
  for (auto it = limbs.rbegin() + 1; it != limbs.rend(); ++it) {
    const std::string digits = std::to_string(*it);
    out += std::string(9 - digits.size(), '0') + digits;
  }
  return out;
}

nlohmann::json json_body(const httplib::Request& req) { return nlohmann::json{{"path", req.path}}; }

struct Args {
  int port = 8080;
  std::size_t threads = webexec::http::ServerOptions{}.threads;
  bool access_log = true;
};

Args parse_args(int argc, char** argv) {
  std::string port = std::getenv("WEBEXEC_PORT") != nullptr ? std::getenv("WEBEXEC_PORT") : "8080";
  std::string threads;
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      port = argv[++i];
    } else if (arg.rfind("--port=", 0) == 0) {
      port = arg.substr(7);
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = argv[++i];
    } else if (arg.rfind("--threads=", 0) == 0) {
      threads = arg.substr(10);
    } else if (arg == "--no-access-log") {
      args.access_log = false;
    } else if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: %s [--port N] [--threads N] [--no-access-log]\n"
          "  --port N     (or WEBEXEC_PORT=N) default 8080\n"
          "  --threads N  server threads, default 8; 256 behind deploy/nginx.conf as shipped\n",
          argv[0]);
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown argument '" + webexec::http::escape_log(arg) +
                                  "' (try --help)");
    }
  }
  args.port = static_cast<int>(webexec::parse_int("--port", port, 0, 65535));
  if (!threads.empty()) {
    args.threads = static_cast<std::size_t>(webexec::parse_int("--threads", threads, 1, 1024));
  }
  return args;
}

/// Writes one line to stderr in a single write, so lines of concurrent
/// requests never interleave. `line` must already be escaped.
void log_line(const std::string& line) {
  const std::string out = line + "\n";
  std::fwrite(out.data(), 1, out.size(), stderr);
}

httplib::Server* running_server = nullptr;

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse_args(argc, argv);
  const int port = args.port;

  webexec::App app("webexec-example");
  app.config().setdefault("EXECUTOR_MAX_WORKERS", 4);
  app.config().setdefault("EXECUTOR_FUTURES_MAX_LENGTH", 1000);
  app.config().setdefault("EXECUTOR_PROPAGATE_EXCEPTIONS", true);
  // Every log line escapes control characters: a client's %0A cannot forge a line.
  app.set_error_handler([](const webexec::ErrorReport& report) {
    log_line("error: " + webexec::http::escape_log(webexec::describe(report)));
  });
  webexec::Executor executor(app);

  httplib::Server server;
  // Threads, timeouts, keep-alive and the body limit: the adapter's safe defaults
  // (TCP_NODELAY on, 8 threads unless --threads, 5 s read/write, 2 s keep-alive,
  // 64 KiB bodies). Behind nginx (deploy/nginx.conf) slow clients never reach these
  // threads.
  webexec::http::configure(server, {.threads = args.threads});
  webexec::http::HttplibOptions http_options;
  if (args.access_log) http_options.access_log = log_line;
  webexec::http::install(server, app, nullptr, nullptr, http_options);

  // README.md quotes the block between the [readme] markers verbatim; the
  // http tests check that it does, and run it with 16 concurrent pollers.
  // [readme seed-flow]
  using webexec::http::send_json;
  server.Get("/start-task", [&](const httplib::Request&, httplib::Response& res) {
    try {
      executor.submit_stored("calc_power", big_pow, 323U, 1235U);
      send_json(res, {{"result", "success"}});
    } catch (const std::invalid_argument&) {  // the key is taken: not yet popped
      send_json(res, {{"result", "already running"}}, 409);
    }
  });
  server.Get("/get-result", [&](const httplib::Request&, httplib::Response& res) {
    // One atomic step: with done() then pop(), two pollers could both see it done.
    auto polled = executor.futures().pop_if_done("calc_power");
    if (!polled) {
      send_json(res, {{"status", nullptr}, {"error", "no task; GET /start-task first"}}, 404);
    } else if (!polled->future) {
      send_json(res, {{"status", to_string(polled->state)}});  // PENDING or RUNNING
    } else {
      send_json(res, {{"status", "done"}, {"result", polled->future->result<std::string>()}});
    }
  });
  // [/readme seed-flow]
  auto send = [](httplib::Response& res, const nlohmann::json& body, int status = 200) {
    send_json(res, body, status);
  };

  // A longer job that reports progress through the status routes.
  auto launch_report = [&](const std::string& key, std::int64_t steps) {
    executor.submit_stored(key, [steps](std::stop_token stop) {
      const auto& request = webexec::current_request();
      for (std::int64_t i = 0; i < steps; ++i) {
        if (stop.stop_requested()) throw std::runtime_error("stopped");
        webexec::report_progress(i, steps, "step " + std::to_string(i + 1));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      webexec::report_progress(steps, steps, "done");
      return nlohmann::json{{"steps", steps},
                            {"requested_by", request.remote_addr},
                            {"request_id", request.request_id},
                            {"path", request.path}};
    });
  };
  // Malformed ?steps= is a 400 naming the parameter, and a full collection a 503 with
  // Retry-After: the adapter maps BadRequest and CapacityError itself.
  server.Get("/reports", [&](const httplib::Request& req, httplib::Response& res) {
    const auto steps = webexec::http::int_param(req, "steps", 10, 1, 1000);
    const std::string key = webexec::http::new_job_key();
    launch_report(key, steps);
    webexec::http::accepted(res, key, "/jobs");
  });
  // The seed's flow with a fresh key per request, for benchmarks/http_load.sh:
  // GET /tiny submits a tiny stored job and answers 202 with its key; poll
  // GET /tiny/<key> until "done" (it is then popped, one atomic step).
  server.Get("/tiny", [&](const httplib::Request&, httplib::Response& res) {
    const std::string key = webexec::http::new_job_key();
    executor.submit_stored(key, [] { return 42; });
    webexec::http::accepted(res, key, "/tiny");
  });
  server.Get("/tiny/([0-9a-f]{32})", [&](const httplib::Request& req, httplib::Response& res) {
    auto polled = executor.futures().pop_if_done(req.matches[1].str());
    if (!polled) {
      send(res, {{"status", nullptr}, {"error", "unknown job"}}, 404);
    } else if (!polled->future) {
      res.set_header("Retry-After", "1");
      send(res, {{"status", to_string(polled->state)}});
    } else {
      send(res, {{"status", "done"}, {"result", polled->future->result<int>()}});
    }
  });
  webexec::http::mount_status_routes(server, executor, "/jobs");
  server.Get("/", [&](const httplib::Request& req, httplib::Response& res) {
    send(res,
         {{"service", app.name()},
          {"routes", {"/start-task", "/get-result", "/reports?steps=N", "/jobs/<key>", "/tiny"}},
          {"you", json_body(req)}});
  });

  running_server = &server;
  std::signal(SIGINT, [](int) { running_server->stop(); });
  std::signal(SIGTERM, [](int) { running_server->stop(); });
  const int bound = port == 0 ? server.bind_to_any_port("127.0.0.1")
                              : (server.bind_to_port("127.0.0.1", port) ? port : -1);
  if (bound <= 0) {
    std::fprintf(stderr, "cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  // httplib listens with a backlog of 5: bursts of polling clients get reset.
  webexec::http::set_listen_backlog(bound);
  std::printf("webexec example service on http://127.0.0.1:%d (Ctrl-C stops)\n", bound);
  std::fflush(stdout);
  if (!server.listen_after_bind()) {
    std::fprintf(stderr, "cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  executor.shutdown(true, true);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "webexec example: %s\n", e.what());
  return 2;
}
