// The wire codec itself (src/process/wire.*), without processes: the CBOR
// decoder reads every value the encoder writes, with nlohmann's mapping,
// and refuses malformed or hostile bodies with std::invalid_argument (never
// a crash: bodies come from untrusted workers); FrameReader cuts streams
// into frames whatever the pieces, also frames of many MiB from a socket.
// Runs on the test's thread (and one writer thread in the socket test).
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "process/wire.hpp"

namespace {

namespace wire = webexec::process::detail;
using nlohmann::json;

/// Every byte value, NUL included: not UTF-8.
std::string all_bytes() {
  std::string out;
  for (int i = 0; i < 256; ++i) out.push_back(static_cast<char>(i));
  return out;
}

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) out.push_back(static_cast<char>(v));
  return out;
}

/// The message decode_body refuses `body` with, or "accepted".
std::string refusal(const std::string& body) {
  try {
    static_cast<void>(wire::decode_body(body));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

TEST(ProcessWireCodecTest, EveryKindOfValueRoundTrips) {
  const std::vector<json> values = {
      nullptr,
      true,
      false,
      0,
      23,
      24,
      255,
      256,
      65535,
      65536,
      std::numeric_limits<std::uint32_t>::max(),
      std::numeric_limits<std::uint64_t>::max(),
      -1,
      -24,
      -25,
      -256,
      -257,
      std::numeric_limits<std::int64_t>::min(),
      0.5,
      1.0e300,
      -0.0,
      std::numeric_limits<double>::infinity(),
      "",
      all_bytes(),
      std::string(100'000, 'x'),
      json::binary({0, 1, 255}),
      json::array(),
      json::object(),
      {{"args", {all_bytes(), 1, {{"nested", {1, 2, nullptr}}}}}, {"ctx", json::object()}},
  };
  for (const json& value : values) {
    EXPECT_EQ(wire::decode_body(wire::encode_body(value)), value) << value.dump(-1, ' ', true);
  }
  const json nan = wire::decode_body(wire::encode_body(std::nan("")));
  EXPECT_TRUE(nan.is_number_float() && std::isnan(nan.get<double>()));
}

TEST(ProcessWireCodecTest, NumbersKeepNlohmannsTypes) {
  EXPECT_TRUE(wire::decode_body(bytes({0x1B, 0, 0, 0, 1, 0, 0, 0, 0})).is_number_unsigned());
  EXPECT_EQ(wire::decode_body(bytes({0x38, 0xFF})), -256);
  EXPECT_TRUE(wire::decode_body(bytes({0x20})).is_number_integer());
  EXPECT_EQ(wire::decode_body(bytes({0xF9, 0x3C, 0x00})), 1.0);  // half
  EXPECT_EQ(wire::decode_body(bytes({0xF9, 0x00, 0x01})), std::ldexp(1.0, -24));
  EXPECT_EQ(wire::decode_body(bytes({0xFA, 0x3F, 0xC0, 0x00, 0x00})), 1.5);  // single
}

TEST(ProcessWireCodecTest, IndefiniteLengthItemsAreRead) {
  EXPECT_EQ(wire::decode_body(bytes({0x7F, 0x62, 'a', 'b', 0x61, 'c', 0xFF})), "abc");
  EXPECT_EQ(wire::decode_body(bytes({0x5F, 0x41, 7, 0x40, 0xFF})), json::binary({7}));
  EXPECT_EQ(wire::decode_body(bytes({0x9F, 0x01, 0x9F, 0xFF, 0xFF})), json::parse("[1, []]"));
  EXPECT_EQ(wire::decode_body(bytes({0xBF, 0x61, 'k', 0x01, 0xFF})), json::parse(R"({"k": 1})"));
}

TEST(ProcessWireCodecTest, ARepeatedKeyKeepsTheLastValue) {
  EXPECT_EQ(wire::decode_body(bytes({0xA2, 0x61, 'k', 0x01, 0x61, 'k', 0x02})),
            json::parse(R"({"k": 2})"));
}

TEST(ProcessWireCodecTest, MalformedBodiesAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "ends early"},
      {bytes({0x18}), "ends early"},
      {bytes({0x62, 'a'}), "items in"},
      {bytes({0x1C}), "reserved additional information 28"},
      {bytes({0x1F}), "indefinite length where none is allowed"},
      {bytes({0xC0, 0x01}), "a tag"},
      {bytes({0xF7}), "simple value 23"},
      {bytes({0xF8, 0x20}), "simple value 24"},
      {bytes({0xFF}), "break code"},
      {bytes({0x3B, 0x80, 0, 0, 0, 0, 0, 0, 0}), "below -2^63"},
      {bytes({0x01, 0x01}), "bytes after the value"},
      {bytes({0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), "items in"},
      {bytes({0xBA, 0x00, 0x01, 0x00, 0x00, 0x01}), "items in"},
      {bytes({0xA1, 0x01, 0x01}), "map key that is not a text string"},
      {bytes({0x7F, 0x41, 'a', 0xFF}), "string chunk"},
      {bytes({0x9F, 0x01}), "ends early"},
  };
  for (const auto& [body, expected] : cases) {
    const std::string message = refusal(body);
    EXPECT_NE(message.find(expected), std::string::npos) << message << " / " << expected;
  }
}

// Regression: nlohmann's reader recursed once per nested indefinite-length
// string chunk, with no bound, so a worker's result frame of 1 MiB of 0x7F
// bytes overflowed the host's stack (a segmentation fault; checked with the
// decoder of c989313).
TEST(ProcessWireCodecTest, NestedIndefiniteStringsAreRefusedNotRecursed) {
  EXPECT_NE(refusal(std::string(1U << 20U, '\x7F')).find("string chunk"), std::string::npos);
  EXPECT_NE(refusal(std::string(1U << 20U, '\x5F')).find("string chunk"), std::string::npos);
}

TEST(ProcessWireCodecTest, NestingIsBoundedAt512Levels) {
  const std::string ok = std::string(512, '\x81') + '\x01';
  EXPECT_NO_THROW(static_cast<void>(wire::decode_body(ok)));
  EXPECT_NE(refusal(std::string(513, '\x81') + '\x01').find("nests deeper than 512"),
            std::string::npos);
  EXPECT_NE(refusal(std::string(1U << 20U, '\x9F')).find("nests deeper than 512"),
            std::string::npos);
}

TEST(ProcessWireCodecTest, JobMessageFieldsAreMovedOut) {
  const json request = {{"job", "j"},   {"args", {all_bytes()}}, {"ctx", {{"g", 1}}},
                        {"label", "l"}, {"progress", true},      {"limit", 10U}};
  const wire::JobMessage m = wire::decode_job_message(wire::encode_body(request));
  EXPECT_EQ(m.job, "j");
  EXPECT_EQ(m.args, json::array({all_bytes()}));
  EXPECT_EQ(m.ctx, json::parse(R"({"g": 1})"));
  EXPECT_EQ(m.limit, 10U);
  EXPECT_THROW(static_cast<void>(wire::decode_job_message(wire::encode_body({{"job", "j"}}))),
               std::invalid_argument);
}

/// Three frames, the middle one `size` bytes of body.
std::string three_frames(std::size_t size) {
  std::string stream;
  wire::append_frame(stream, wire::Kind::started, 1, 0, "");
  wire::append_frame(stream, wire::Kind::result, 2, 3, wire::encode_body(std::string(size, 'b')));
  wire::append_frame(stream, wire::Kind::skipped, 3, 0, "");
  return stream;
}

void expect_three_frames(wire::FrameReader& reader, const std::string& stream, std::size_t piece) {
  std::vector<std::pair<std::uint64_t, std::size_t>> seen;  // id, body size
  for (std::size_t at = 0; at < stream.size(); at += piece) {
    reader.feed(std::string_view(stream).substr(at, piece));
    while (auto frame = reader.next()) seen.emplace_back(frame->id, frame->body.size());
  }
  ASSERT_TRUE(reader.error().empty()) << reader.error();
  ASSERT_EQ(seen.size(), 3U);
  EXPECT_EQ(seen[0].first, 1U);
  EXPECT_EQ(seen[1].first, 2U);
  EXPECT_EQ(seen[2].first, 3U);
}

TEST(ProcessWireCodecTest, FrameReaderCutsAnyPiecesIntoFrames) {
  for (const std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
    wire::FrameReader reader(1U << 20U);
    expect_three_frames(reader, three_frames(10'000), piece);
  }
  wire::FrameReader reader(16U << 20U);
  const std::string big = three_frames(8U << 20U);
  expect_three_frames(reader, big, 300'000);
  expect_three_frames(reader, three_frames(10), 1);  // the same reader again
}

TEST(ProcessWireCodecTest, FrameReaderReadsAnEightMiBFrameFromASocket) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  const std::string stream = three_frames(8U << 20U);
  std::thread writer([&] {
    EXPECT_TRUE(wire::write_all(fds[1], stream));
    ::close(fds[1]);
  });
  wire::FrameReader reader(16U << 20U);
  std::vector<std::size_t> sizes;
  // Bounded: every fill() but the last reads at least one byte.
  for (std::size_t reads = 0; reads <= stream.size(); ++reads) {
    const auto status = reader.fill(fds[0], 1);
    while (auto frame = reader.next()) {
      sizes.push_back(frame->body.size());
      if (frame->kind == wire::Kind::result) {
        EXPECT_EQ(wire::decode_body(frame->body), std::string(8U << 20U, 'b'));
      }
    }
    if (status != wire::FrameReader::Status::ok) break;
  }
  writer.join();
  ::close(fds[0]);
  ASSERT_EQ(sizes.size(), 3U);
  EXPECT_EQ(sizes[1], wire::encode_body(std::string(8U << 20U, 'b')).size());
}

// encode_frame (the worker's result frames) writes exactly the bytes of
// append_frame(encode_body(...)), with a long string's bytes left in place.
TEST(ProcessWireCodecTest, EncodeFrameWritesWhatAppendFrameWrites) {
  std::string long_text;
  for (std::size_t i = 0; i < wire::kDirectTail / 256 + 1; ++i) long_text += all_bytes();
  const std::vector<json> values = {json(long_text), json(std::string(10, 'x')),
                                    json::array({long_text}), json(42), json(nullptr)};
  for (const json& value : values) {
    const wire::OutFrame frame = wire::encode_frame(wire::Kind::result, 7, value);
    std::string expected;
    wire::append_frame(expected, wire::Kind::result, 7, 0, wire::encode_body(value));
    EXPECT_EQ(frame.head + std::string(frame.tail), expected) << value.type_name();
    EXPECT_EQ(frame.body_size(), expected.size() - wire::kHeaderSize);
    EXPECT_EQ(frame.tail.empty(),
              !value.is_string() || value.get_ref<const std::string&>().size() < wire::kDirectTail);
  }
}

// OutBuffer sends queued frames in order, large bodies by reference, over a
// socket that takes them in pieces.
TEST(ProcessWireCodecTest, OutBufferSendsFramesInOrderInPieces) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  const auto big = std::make_shared<const std::string>(std::string(3U << 20U, 'q'));
  const auto small = std::make_shared<const std::string>(all_bytes());
  wire::OutBuffer out;
  std::string expected;
  for (std::uint64_t id = 1; id <= 3; ++id) {
    const auto& body = id == 2 ? big : small;
    const std::string header = wire::frame_header(wire::Kind::job, id, 1, body->size());
    out.push(header, body);
    expected += header + *body;
  }
  EXPECT_EQ(out.size(), expected.size());
  std::string got;
  std::vector<char> chunk(64U << 10U);
  // Bounded: each round moves at least one byte while anything is left.
  for (std::size_t round = 0; round <= expected.size() && got.size() < expected.size(); ++round) {
    ASSERT_NE(out.flush(fds[0]), wire::OutBuffer::Status::error);
    const ssize_t n = ::read(fds[1], chunk.data(), chunk.size());
    if (n > 0) got.append(chunk.data(), static_cast<std::size_t>(n));
  }
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(out.size(), 0U);
  EXPECT_TRUE(got == expected);
  out.push(wire::frame_header(wire::Kind::job, 4, 0, big->size()), big);
  out.clear();
  EXPECT_TRUE(out.empty());
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
