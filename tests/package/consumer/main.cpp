// Uses an installed webexec through find_package(webexec CONFIG REQUIRED).
#include "webexec/webexec.hpp"

int main() {
  webexec::ThreadPoolExecutor pool(2);
  auto f = pool.submit([](int a, int b) { return a + b; }, 2, 3);
  return f.result() == 5 ? 0 : 1;
}
