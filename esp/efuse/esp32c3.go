package efuse

// esp32c3Fields is the ESP32-C3 table (§3.1, §3.3, §3.7; positions and
// WR_DIS bits as in espefuse's esp32c3 definitions). The block layout and the
// postponed fields are those of the S3 (esp32s3.go).
func esp32c3Fields() []Field {
	fs := []Field{
		fd("WR_DIS", 0, 0, 0, 32, -1, "write-protect bits, one per field group"),
		fd("RD_DIS", 0, 1, 0, 7, 0, "read-protect bits: bit k hides BLOCK_KEYk, bit 6 BLOCK_SYS_DATA2"),
		fd("DIS_RTC_RAM_BOOT", 0, 1, 7, 1, 1, "no boot from RTC RAM").hide(),
		fd("DIS_ICACHE", 0, 1, 8, 1, 2, "instruction cache off"),
		fd("DIS_USB_JTAG", 0, 1, 9, 1, 2, "USB-Serial-JTAG cannot switch to JTAG"),
		fd("DIS_DOWNLOAD_ICACHE", 0, 1, 10, 1, 2, "no ICache in download mode"),
		fd("DIS_USB_SERIAL_JTAG", 0, 1, 11, 1, 2, "USB-Serial-JTAG device off").alias("DIS_USB_DEVICE"),
		fd("DIS_FORCE_DOWNLOAD", 0, 1, 12, 1, 2, "software cannot force download mode"),
		fd("DIS_TWAI", 0, 1, 14, 1, 2, "TWAI (CAN) off").alias("DIS_CAN"),
		fd("JTAG_SEL_ENABLE", 0, 1, 15, 1, 2, "JTAG source chosen by strapping pin (does not work on C3)"),
		fd("SOFT_DIS_JTAG", 0, 1, 16, 3, 31, "JTAG off while an odd number of bits is set (HMAC can re-enable)"),
		fd("DIS_PAD_JTAG", 0, 1, 19, 1, 2, "pad JTAG off permanently"),
		fd("DIS_DOWNLOAD_MANUAL_ENCRYPT", 0, 1, 20, 1, 2, "no flash encryption in download mode"),
		fd("USB_DREFH", 0, 1, 21, 2, 30, "USB single-end threshold high").hide(),
		fd("USB_DREFL", 0, 1, 23, 2, 30, "USB single-end threshold low").hide(),
		fd("USB_EXCHG_PINS", 0, 1, 25, 1, 30, "swap USB D+ and D-"),
		fd("VDD_SPI_AS_GPIO", 0, 1, 26, 1, 30, "VDD_SPI pin used as GPIO"),
		fd("BTLC_GPIO_ENABLE", 0, 1, 27, 2, 30, "Bluetooth GPIO output level control").hide(),
		fd("POWERGLITCH_EN", 0, 1, 29, 1, 3, "power-glitch reset").hide(),
		fd("POWER_GLITCH_DSENSE", 0, 1, 30, 2, 3, "power-glitch detector sensitivity").hide(),
		fd("WDT_DELAY_SEL", 0, 2, 16, 2, 3, "RTC watchdog timeout"),
	}
	fs = append(fs, s3c3SecurityWord2and3()...)
	fs = append(fs, fd("FLASH_TPUW", 0, 3, 28, 4, 18, "wait after flash power-up (ms)"))
	fs = append(fs, s3c3Word4(false)...)
	fs = append(fs,
		fd("ERR_RST_ENABLE", 0, 4, 31, 1, 19, "reset on eFuse check error"),
		fd("DISABLE_WAFER_VERSION_MAJOR", 0, 5, 0, 1, 19, "ignore WAFER_VERSION_MAJOR"),
		fd("DISABLE_BLK_VERSION_MAJOR", 0, 5, 1, 1, 19, "ignore BLK_VERSION_MAJOR"),
	)
	fs = append(fs, s3c3Block1()...)
	fs = append(fs, s3c3Block1Tail()...)
	return append(fs, s3c3KeyFields()...)
}
