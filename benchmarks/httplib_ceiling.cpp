// benchmarks/httplib_ceiling.cpp: the ceiling for benchmarks/http_load.sh. A plain
// httplib::Server (Debian's 0.11.4) with the example service's server settings and the
// same tiny-job routes, but no webexec at all: GET /tiny stores 42 under a fresh key in
// a map behind one mutex and answers 202 with the key; GET /tiny/<key> pops it and
// answers "done". What wrk measures against it is what httplib, the kernel's loopback
// and wrk itself cost on this machine, so the service's jobs/s can only be below it.
// Runs httplib's connection threads; the map is their only shared state.
//
//   httplib_ceiling --port 18081 --threads 256
//   wrk -t16 -c16 -d5s -s benchmarks/tiny_jobs.lua http://127.0.0.1:18081/
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>

#include <httplib.h>

namespace {

httplib::Server* running_server = nullptr;

}  // namespace

int main(int argc, char** argv) {
  int port = 18081;
  std::size_t threads = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--port") {
      port = std::atoi(argv[i + 1]);
    } else if (flag == "--threads") {
      threads = static_cast<std::size_t>(std::atoi(argv[i + 1]));
    } else {
      std::fprintf(stderr, "usage: httplib_ceiling [--port N] [--threads N]\n");
      return 2;
    }
  }
  if (threads == 0) threads = 1;

  httplib::Server server;
  // The example service's settings (webexec::http::ServerOptions), set by hand.
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_keep_alive_timeout(2);
  server.set_keep_alive_max_count(1000);
  server.set_payload_max_length(64 * 1024);
  server.set_tcp_nodelay(true);

  std::mutex mutex;
  std::unordered_map<std::string, int> jobs;
  unsigned long long next = 0;
  server.Get("/tiny", [&](const httplib::Request&, httplib::Response& res) {
    char key[33];
    {
      const std::lock_guard<std::mutex> lock(mutex);
      std::snprintf(key, sizeof key, "%032llx", ++next);
      jobs.emplace(key, 42);
    }
    res.status = 202;
    res.set_content(std::string(R"({"key":")") + key + R"(","status_url":"/tiny/)" + key + "\"}",
                    "application/json");
  });
  server.Get("/tiny/([0-9a-f]{32})", [&](const httplib::Request& req, httplib::Response& res) {
    bool found = false;
    {
      const std::lock_guard<std::mutex> lock(mutex);
      found = jobs.erase(req.matches[1].str()) == 1;
    }
    if (found) {
      res.set_content(R"({"status":"done","result":42})", "application/json");
    } else {
      res.status = 404;
      res.set_content(R"({"status":null,"error":"unknown job"})", "application/json");
    }
  });
  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"service":"httplib_ceiling"})", "application/json");
  });

  running_server = &server;
  std::signal(SIGINT, [](int) { running_server->stop(); });
  std::signal(SIGTERM, [](int) { running_server->stop(); });
  if (!server.bind_to_port("127.0.0.1", port)) {
    std::fprintf(stderr, "cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  std::printf("httplib_ceiling on http://127.0.0.1:%d\n", port);
  std::fflush(stdout);
  return server.listen_after_bind() ? 0 : 1;
}
