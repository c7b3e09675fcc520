module kc.local/internet-standin

go 1.26
