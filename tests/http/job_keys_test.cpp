// Job keys and generated request ids (issue 9 item 14): keys were drawn from a
// thread-local mt19937_64 whose raw outputs also went out as X-Request-Id, so a client
// could predict other clients' keys. Keys now take 128 bits from the OS CSPRNG
// (getrandom), and request ids separate draws. The source is checked through the
// adapter's test seam (detail::random_source), and over real HTTP.
#include <cctype>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "webexec/app.hpp"
#include "webexec/executor.hpp"
#include "webexec/http/httplib_adapter.hpp"

#include "support/http_server.hpp"

namespace {

using nlohmann::json;
using webexec_test::HttpServer;

bool is_lower_hex(const std::string& s, std::size_t digits) {
  if (s.size() != digits) return false;
  for (const char c : s) {
    if ((c < '0' || c > '9') && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

/// A fake random source: records each request's size and fills it with a counter.
struct FakeSource {
  static inline std::mutex mutex;
  static inline std::vector<std::size_t> sizes;
  static inline unsigned char next = 0;
  static void fill(void* out, std::size_t size) {
    const std::lock_guard lock(mutex);
    sizes.push_back(size);
    auto* p = static_cast<unsigned char*>(out);
    for (std::size_t i = 0; i < size; ++i) p[i] = next++;
  }
  /// The sizes drawn so far. The server's threads draw: read under the lock (the
  /// client's reply orders the draw before this for us, but not for TSan).
  static std::vector<std::size_t> drawn() {
    const std::lock_guard lock(mutex);
    return sizes;
  }
};

/// Installs FakeSource for one test and restores the OS source afterwards.
class SeamedSource {
 public:
  SeamedSource() {
    const std::lock_guard lock(FakeSource::mutex);
    FakeSource::sizes.clear();
    FakeSource::next = 0;
    previous_ = webexec::http::detail::random_source().exchange(&FakeSource::fill);
  }
  SeamedSource(const SeamedSource&) = delete;
  SeamedSource& operator=(const SeamedSource&) = delete;
  ~SeamedSource() { webexec::http::detail::random_source().store(previous_); }

 private:
  webexec::http::detail::RandomSource previous_;
};

TEST(JobKeysTest, TheDefaultSourceIsTheOsCsprng) {
  EXPECT_EQ(webexec::http::detail::random_source().load(), &webexec::http::detail::os_random_bytes);
}

TEST(JobKeysTest, AKeyIsSixteenBytesOfTheSourceInHex) {
  const SeamedSource seam;
  EXPECT_EQ(webexec::http::new_job_key(), "000102030405060708090a0b0c0d0e0f");
  EXPECT_EQ(FakeSource::drawn(), std::vector<std::size_t>{16}) << "one 128-bit draw per key";
}

TEST(JobKeysTest, OsKeysAre32HexDigitsAndDistinct) {
  std::set<std::string> keys;
  for (int i = 0; i < 10000; ++i) {
    const std::string key = webexec::http::new_job_key();
    ASSERT_TRUE(is_lower_hex(key, 32)) << key;
    keys.insert(key);
  }
  EXPECT_EQ(keys.size(), 10000U);
}

TEST(JobKeysTest, OsRandomBytesFillsLargeRequests) {
  std::vector<unsigned char> a(4096);
  std::vector<unsigned char> b(4096);
  webexec::http::detail::os_random_bytes(a.data(), a.size());
  webexec::http::detail::os_random_bytes(b.data(), b.size());
  EXPECT_NE(a, b);
  EXPECT_NE(a, std::vector<unsigned char>(4096));
}

// Over HTTP: the request id the server generates and the key of the job it stores are
// separate draws from the source (the request id's 8 bytes, then the key's 16), so
// neither contains the other's bits.
TEST(JobKeysTest, RequestIdsAndKeysAreSeparateDraws) {
  webexec::App app("keys-test");
  webexec::Executor executor(app);
  HttpServer http;
  webexec::http::install(http.server(), app);
  http.server().Get("/job", [&](const httplib::Request&, httplib::Response& res) {
    const std::string key = webexec::http::new_job_key();
    executor.submit_stored(key, [] { return 1; });
    webexec::http::accepted(res, key);
  });
  http.start();
  auto cli = http.client();
  {
    const SeamedSource seam;
    auto res = cli.Get("/job");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    ASSERT_EQ(res->status, 202);
    EXPECT_EQ(res->get_header_value("X-Request-Id"), "0001020304050607");
    EXPECT_EQ(json::parse(res->body).at("key"), "08090a0b0c0d0e0f1011121314151617");
    EXPECT_EQ(FakeSource::drawn(), (std::vector<std::size_t>{8, 16}));
  }
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto res = cli.Get("/job");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    const std::string id = res->get_header_value("X-Request-Id");
    const std::string key = json::parse(res->body).at("key");
    ASSERT_TRUE(is_lower_hex(id, 16)) << id;
    ASSERT_TRUE(is_lower_hex(key, 32)) << key;
    EXPECT_EQ(key.find(id), std::string::npos);
    EXPECT_TRUE(seen.insert(id).second);
    EXPECT_TRUE(seen.insert(key).second);
  }
}

}  // namespace
