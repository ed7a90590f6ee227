#include <fmt/format.h>

#include <cstring>

#include "ferry/error.h"

namespace ferry {

Error ErrorFromErrno(int err, const std::string& what) {
  std::string message = fmt::format("{}: {}", what, std::strerror(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EROFS:
      // Every further file would fail the same way.
      return Error(ErrorCode::kLocalIo, RetryClass::kStopRun, message);
    case EINTR:
    case EAGAIN:
      return Error(ErrorCode::kLocalIo, RetryClass::kTransient, message);
    default:
      return Error(ErrorCode::kLocalIo, RetryClass::kPermanent, message);
  }
}

}  // namespace ferry
