// The thread engine: an Engine over a ThreadPoolExecutor. Executor submits
// thread tasks straight to thread_pool() (its inlined template path); the
// rest of the interface runs on whichever thread calls it.
#include <memory>
#include <utility>

#include "webexec/detail/engine.hpp"
#include "webexec/errors.hpp"
#include "webexec/thread_pool_executor.hpp"

namespace webexec::detail {

class ThreadEngine final : public Engine {
 public:
  explicit ThreadEngine(ThreadPoolOptions options) : pool_(std::move(options)) {}
  ~ThreadEngine() override { close(); }
  ThreadEngine(const ThreadEngine&) = delete;
  ThreadEngine& operator=(const ThreadEngine&) = delete;

  [[nodiscard]] EngineKind kind() const noexcept override { return EngineKind::thread; }
  [[nodiscard]] ThreadPoolExecutor* thread_pool() noexcept override { return &pool_; }

  void check_job(const std::string& /*name*/) const override {}

  void submit(std::unique_ptr<RemoteJob> /*job*/) override {
    throw InvalidStateError("a thread engine runs tasks in this process, not remote jobs");
  }

  void shutdown(bool wait, bool cancel_futures) override { pool_.shutdown(wait, cancel_futures); }

  void close() noexcept override {
    if (closed_) return;
    closed_ = true;
    if (pool_.is_own_thread()) {
      // Closed by one of its own tasks or by a done callback on a worker:
      // the calling thread cannot be joined. Queued tasks are cancelled (they
      // would run with a destroyed executor), every other worker is joined,
      // and this one exits after the current task; see docs/design.md.
      pool_.abandon_from_worker();
      return;
    }
    pool_.shutdown(true, false);
  }

  [[nodiscard]] bool is_shutdown() const override { return pool_.is_shutdown(); }
  [[nodiscard]] int max_workers() const override { return pool_.max_workers(); }
  [[nodiscard]] EngineStats stats() const override { return pool_.stats(); }

 private:
  ThreadPoolExecutor pool_;
  bool closed_ = false;  // close() runs once, on the owner's thread
};

std::unique_ptr<Engine> make_thread_engine(ThreadPoolOptions options) {
  return std::make_unique<ThreadEngine>(std::move(options));
}

}  // namespace webexec::detail
