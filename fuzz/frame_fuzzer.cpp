// libFuzzer target for the process engine's frame decoder (src/process/wire.*):
// the bytes a worker process writes to the host are untrusted. The input is
// fed to a FrameReader in two pieces (split at the first byte's value, so
// partial frames are exercised), and every frame it yields goes through
// decode_worker_message, as the host's dispatcher does, and through
// decode_job_message, as a worker does. Anything but std::invalid_argument
// (or a crash, leak or sanitizer report) is a bug.
//
// Build: the fuzz preset (fuzz/CMakeLists.txt); run:
//   build/fuzz/fuzz/frame_fuzzer -max_total_time=60 fuzz/corpus/frame
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "process/wire.hpp"

namespace wire = webexec::process::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::size_t split = size == 0 ? 0 : static_cast<std::uint8_t>(bytes[0]) % (size + 1);
  // A small limit, so the oversized-frame path is reachable too.
  wire::FrameReader reader(1U << 16U);
  for (const std::string_view part : {bytes.substr(0, split), bytes.substr(split)}) {
    reader.feed(part);
    while (auto frame = reader.next()) {
      try {
        static_cast<void>(wire::decode_worker_message(*frame));
      } catch (const std::invalid_argument&) {  // NOLINT(bugprone-empty-catch): refused, fine
      }
      try {
        static_cast<void>(wire::decode_job_message(frame->body));
      } catch (const std::invalid_argument&) {  // NOLINT(bugprone-empty-catch): refused, fine
      }
    }
  }
  return 0;
}
