title0 = "1 KiB, 1,000 rps over 4 connections, open loop"
title1 = "1 KiB, 10,000 rps over 64 connections, open loop"
nblocks = 2
