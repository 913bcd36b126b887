// A tour of webexec's concurrent.futures core: submit, map, wait,
// as_completed, cancellation and cooperative stop, printing what happens.
//
//   bash scripts/run-example.sh
#include <chrono>
#include <cstdio>
#include <latch>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "webexec/webexec.hpp"

using namespace std::chrono_literals;

namespace {

long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

}  // namespace

int main() {
  webexec::ThreadPoolExecutor pool({.max_workers = 4, .thread_name_prefix = "tour"});
  std::printf("webexec %s: ThreadPoolExecutor with max_workers=%d\n\n", webexec::version_string,
              pool.max_workers());

  // submit: a future of the task's result.
  webexec::Future<long> f = pool.submit(fib, 30);
  f.add_done_callback([](const webexec::Future<long>& done) {
    std::printf("[callback] fib(30) finished with %ld\n", done.result());
  });
  const long value = f.result();
  std::printf("submit:       fib(30) = %ld (state %s)\n", value, to_string(f.state()));

  // Exceptions travel with the future and are rethrown by result().
  auto failing = pool.submit([]() -> int { throw std::runtime_error("bad input"); });
  try {
    static_cast<void>(failing.result());
  } catch (const std::runtime_error& e) {
    std::printf("exception:    result() rethrew \"%s\"\n", e.what());
  }

  // map: submitted eagerly, results in input order.
  std::printf("map:          squares of 1..6 =");
  for (int sq : pool.map([](int x) { return x * x; }, std::vector{1, 2, 3, 4, 5, 6})) {
    std::printf(" %d", sq);
  }
  std::printf("\n");

  // wait: return as soon as the first of three finishes.
  std::vector<webexec::Future<std::string>> racers;
  for (int ms : {300, 30, 150}) {
    racers.push_back(pool.submit([ms] {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return std::to_string(ms) + " ms";
    }));
  }
  auto [done, not_done] = webexec::wait(racers, {}, webexec::ReturnWhen::first_completed);
  std::printf("wait:         first_completed -> %zu done (%s), %zu not done\n", done.size(),
              done.front().result().c_str(), not_done.size());

  // as_completed: in completion order, not submission order.
  std::printf("as_completed:");
  for (const auto& racer : webexec::as_completed(racers))
    std::printf(" [%s]", racer.result().c_str());
  std::printf("\n");

  // cancel: only a pending future can be cancelled.
  webexec::ThreadPoolExecutor single(1);
  std::latch started(1);
  std::latch release(1);
  auto blocker = single.submit([&] {
    started.count_down();
    release.wait();
  });
  started.wait();
  auto queued = single.submit([] { return 1; });
  const bool cancelled = queued.cancel();
  std::printf("cancel:       queued task cancel() = %s, state %s; running task cancel() = %s\n",
              cancelled ? "true" : "false", to_string(queued.state()),
              blocker.cancel() ? "true" : "false");
  release.count_down();
  try {
    static_cast<void>(queued.result());
  } catch (const webexec::CancelledError&) {
    std::printf("              result() of the cancelled task threw CancelledError\n");
  }

  // request_stop: a running task that takes a std::stop_token stops cooperatively.
  auto worker = pool.submit([](std::stop_token stop) {
    long spins = 0;
    while (!stop.stop_requested()) {
      ++spins;
      std::this_thread::sleep_for(1ms);
    }
    return spins;
  });
  std::this_thread::sleep_for(20ms);
  worker.request_stop();
  std::printf("request_stop: the running task saw its stop token after %ld iterations\n",
              worker.result());

  // timeouts
  auto slow = pool.submit([] { std::this_thread::sleep_for(200ms); });
  try {
    slow.result(10ms);
  } catch (const webexec::TimeoutError&) {
    std::printf("timeout:      result(10ms) threw TimeoutError while the task ran\n");
  }

  pool.shutdown();
  try {
    static_cast<void>(pool.submit([] {}));
  } catch (const webexec::ShutdownError& e) {
    std::printf("shutdown:     submit after shutdown threw ShutdownError: %s\n", e.what());
  }
  return 0;
}
