title0 = "1 KiB, 1,000 rps over 4 connections, open loop"
title1 = "1 KiB, 10,000 rps over 64 connections, open loop"
nblocks = 2
array C[4] = ["#000000", "#1f77b4", "#d62728", "#2ca02c"]
array PC[3] = ["#1f77b4", "#d62728", "#2ca02c"]
array D[4] = [1, 3, 3, 3]
array PD[3] = [3, 3, 3]
