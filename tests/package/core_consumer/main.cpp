// Uses webexec::core alone, found without pkg-config (see CMakeLists.txt).
#include "webexec/webexec.hpp"

int main() {
  webexec::ThreadPoolExecutor pool(2);
  auto f = pool.submit([](int a, int b) { return a * b; }, 6, 7);
  return f.result() == 42 ? 0 : 1;
}
