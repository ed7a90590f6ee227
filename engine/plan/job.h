// A job: one file to fetch, as the planner hands it to the transfer loop.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ferry/digest.h"
#include "ferry/retry_policy.h"

namespace ferry {

struct Job {
  std::string path;  // relative path, as in the manifest
  std::string url;   // the file's URL on the collection
  std::string dest;  // final local path
  std::optional<uint64_t> size;
  std::optional<Digest128> xxh128;
  uint64_t line = 0;  // manifest line, for messages

  int attempts = 0;  // attempts started so far
  Clock::time_point first_start;
  bool end_of_plan = false;  // marks the end of the manifest; no file
};

}  // namespace ferry
