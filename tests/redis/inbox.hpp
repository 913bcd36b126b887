// Test helper for the redis Submitter: collects completions by job id and waits
// for a count with a condition variable (never a sleep).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "redis/submitter.hpp"

namespace webexec_test::redis {

class Inbox {
 public:
  webexec::redis::Submitter::Callback callback() {
    return [this](webexec::redis::Completion c) {
      const std::lock_guard<std::mutex> lock(mutex_);
      got_[c.job_id].push_back(std::move(c));
      ++total_;
      changed_.notify_all();
    };
  }
  /// True once `n` completions arrived, false after `patience`.
  bool wait_for(std::size_t n, std::chrono::seconds patience = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, patience, [&] { return total_ >= n; });
  }
  std::map<std::string, std::vector<webexec::redis::Completion>> snapshot() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return got_;
  }
  std::size_t total() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return total_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::vector<webexec::redis::Completion>> got_;
  std::size_t total_ = 0;
};

}  // namespace webexec_test::redis
