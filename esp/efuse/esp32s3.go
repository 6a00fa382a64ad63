package efuse

import "fuseline/esp/chip"

// ESP32-S3 and ESP32-C3 share the block layout (§2.1) and most of BLOCK0.

func s3c3Blocks() []Block {
	bs := []Block{
		{Num: 0, Name: "BLOCK0", Words: 6, WrDis: -1, RdDis: -1, Coding: chip.CodingNone},
		{Num: 1, Name: "MAC_SPI_8M_0", Alias: []string{"BLOCK1"}, Words: 6, WrDis: 20, RdDis: -1, Coding: chip.CodingRS},
		{Num: 2, Name: "BLOCK_SYS_DATA", Alias: []string{"BLOCK2"}, Words: 8, WrDis: 21, RdDis: -1, Coding: chip.CodingRS},
		{Num: 3, Name: "BLOCK_USR_DATA", Alias: []string{"BLOCK3"}, Words: 8, WrDis: 22, RdDis: -1, Coding: chip.CodingRS},
	}
	for k := range 6 {
		bs = append(bs, Block{Num: 4 + k, Name: "BLOCK_KEY" + string(rune('0'+k)), Alias: []string{"BLOCK" + string(rune('4'+k))},
			Words: 8, WrDis: 23 + k, RdDis: k, Coding: chip.CodingRS})
	}
	return append(bs, Block{Num: 10, Name: "BLOCK_SYS_DATA2", Alias: []string{"BLOCK10"}, Words: 8, WrDis: 29, RdDis: 6, Coding: chip.CodingRS})
}

// s3c3Postponed are the BLOCK0 fields espefuse burns in a second BLOCK0 pass
// (§1.3 "Postponed BLOCK0 fields").
func s3c3Postponed() []string {
	return []string{"WR_DIS", "RD_DIS", "ENABLE_SECURITY_DOWNLOAD", "DIS_DOWNLOAD_MODE", "SPI_BOOT_CRYPT_CNT", "SECURE_BOOT_EN"}
}

// s3c3KeyFields are the key blocks as whole-block fields, plus BLOCK_SYS_DATA2.
func s3c3KeyFields() []Field {
	var fs []Field
	for k := range 6 {
		n := string(rune('0' + k))
		fs = append(fs, fd("BLOCK_KEY"+n, 4+k, 0, 0, 256, 23+k, "key block "+n+": key, Secure Boot digest or user data (KEY_PURPOSE_"+n+")").
			rd(k).alias("KEY"+n))
	}
	return append(fs, fd("BLOCK_SYS_DATA2", 10, 0, 0, 256, 29, "system data part 2").rd(6).alias("SYS_DATA_PART2"))
}

// s3c3Block1 are the BLOCK1 fields both chips share (§3.7): factory MAC, SPI
// pad configuration, wafer, package and flash information.
func s3c3Block1() []Field {
	return []Field{
		fd("MAC", 1, 0, 0, 48, 20, "factory MAC address").kind(KindMAC).alias("MAC_FACTORY"),
		fd("SPI_PAD_CONFIG_CLK", 1, 1, 16, 6, 20, "SPI flash CLK pad"),
		fd("SPI_PAD_CONFIG_Q", 1, 1, 22, 6, 20, "SPI flash Q pad"),
		fd("SPI_PAD_CONFIG_D", 1, 1, 28, 6, 20, "SPI flash D pad"),
		fd("SPI_PAD_CONFIG_CS", 1, 2, 2, 6, 20, "SPI flash CS pad"),
		fd("SPI_PAD_CONFIG_HD", 1, 2, 8, 6, 20, "SPI flash HD pad"),
		fd("SPI_PAD_CONFIG_WP", 1, 2, 14, 6, 20, "SPI flash WP pad"),
		fd("SPI_PAD_CONFIG_DQS", 1, 2, 20, 6, 20, "SPI flash DQS pad"),
		fd("SPI_PAD_CONFIG_D4", 1, 2, 26, 6, 20, "SPI flash D4 pad"),
		fd("SPI_PAD_CONFIG_D5", 1, 3, 0, 6, 20, "SPI flash D5 pad"),
		fd("SPI_PAD_CONFIG_D6", 1, 3, 6, 6, 20, "SPI flash D6 pad"),
		fd("SPI_PAD_CONFIG_D7", 1, 3, 12, 6, 20, "SPI flash D7 pad"),
		fd("WAFER_VERSION_MINOR_LO", 1, 3, 18, 3, 20, "wafer minor version, low 3 bits"),
		fd("PKG_VERSION", 1, 3, 21, 3, 20, "package version"),
		fd("BLK_VERSION_MINOR", 1, 3, 24, 3, 20, "BLOCK1/2 data format, minor"),
		fd("FLASH_CAP", 1, 3, 27, 3, 20, "in-package flash size"),
		fd("FLASH_TEMP", 1, 3, 30, 2, 20, "in-package flash temperature grade"),
		fd("FLASH_VENDOR", 1, 4, 0, 3, 20, "in-package flash vendor"),
	}
}

func s3c3Block1Tail() []Field {
	return []Field{
		fd("WAFER_VERSION_MINOR_HI", 1, 5, 23, 1, 20, "wafer minor version, bit 3"),
		fd("WAFER_VERSION_MAJOR", 1, 5, 24, 2, 20, "wafer major version"),
		fd("OPTIONAL_UNIQUE_ID", 2, 0, 0, 128, 21, "128-bit unique ID"),
		fd("BLK_VERSION_MAJOR", 2, 4, 0, 2, 21, "BLOCK1/2 data format, major (calibration present)"),
		fd("BLOCK_USR_DATA", 3, 0, 0, 256, 22, "user data block").alias("USER_DATA"),
		fd("CUSTOM_MAC", 3, 6, 8, 48, 22, "custom MAC address (natural byte order)").kind(KindCustomMAC).alias("MAC_CUSTOM", "USER_DATA_MAC_CUSTOM"),
	}
}

// esp32s3Fields is the ESP32-S3 table (§3.1, §3.3, §3.7; positions and
// WR_DIS bits as in espefuse's esp32s3 definitions).
func esp32s3Fields() []Field {
	fs := []Field{
		fd("WR_DIS", 0, 0, 0, 32, -1, "write-protect bits, one per field group"),
		fd("RD_DIS", 0, 1, 0, 7, 0, "read-protect bits: bit k hides BLOCK_KEYk, bit 6 BLOCK_SYS_DATA2"),
		fd("DIS_RTC_RAM_BOOT", 0, 1, 7, 1, 1, "no boot from RTC RAM").hide(),
		fd("DIS_ICACHE", 0, 1, 8, 1, 2, "instruction cache off"),
		fd("DIS_DCACHE", 0, 1, 9, 1, 2, "data cache off"),
		fd("DIS_DOWNLOAD_ICACHE", 0, 1, 10, 1, 2, "no ICache in download mode"),
		fd("DIS_DOWNLOAD_DCACHE", 0, 1, 11, 1, 2, "no DCache in download mode"),
		fd("DIS_FORCE_DOWNLOAD", 0, 1, 12, 1, 2, "software cannot force download mode"),
		fd("DIS_USB_OTG", 0, 1, 13, 1, 2, "USB OTG off").alias("DIS_USB"),
		fd("DIS_TWAI", 0, 1, 14, 1, 2, "TWAI (CAN) off").alias("DIS_CAN"),
		fd("DIS_APP_CPU", 0, 1, 15, 1, 2, "second CPU off"),
		fd("SOFT_DIS_JTAG", 0, 1, 16, 3, 31, "JTAG off while an odd number of bits is set (HMAC can re-enable)"),
		fd("DIS_PAD_JTAG", 0, 1, 19, 1, 2, "pad JTAG off permanently").alias("HARD_DIS_JTAG"),
		fd("DIS_DOWNLOAD_MANUAL_ENCRYPT", 0, 1, 20, 1, 2, "no flash encryption in download mode"),
		fd("USB_DREFH", 0, 1, 21, 2, 30, "USB single-end threshold high").hide(),
		fd("USB_DREFL", 0, 1, 23, 2, 30, "USB single-end threshold low").hide(),
		fd("USB_EXCHG_PINS", 0, 1, 25, 1, 30, "swap USB D+ and D-"),
		fd("USB_EXT_PHY_ENABLE", 0, 1, 26, 1, 30, "external USB PHY").alias("EXT_PHY_ENABLE"),
		fd("BTLC_GPIO_ENABLE", 0, 1, 27, 2, 30, "Bluetooth GPIO output level control").hide(),
		fd("VDD_SPI_MODECURLIM", 0, 1, 29, 1, 3, "flash regulator current-limit mode").hide(),
		fd("VDD_SPI_DREFH", 0, 1, 30, 2, 3, "flash regulator high reference").hide(),
		fd("VDD_SPI_DREFM", 0, 2, 0, 2, 3, "flash regulator medium reference").hide(),
		fd("VDD_SPI_DREFL", 0, 2, 2, 2, 3, "flash regulator low reference").hide(),
		fd("VDD_SPI_XPD", 0, 2, 4, 1, 3, "flash regulator powered"),
		fd("VDD_SPI_TIEH", 0, 2, 5, 1, 3, "flash voltage source when forced"),
		fd("VDD_SPI_FORCE", 0, 2, 6, 1, 3, "flash voltage set by eFuse"),
		fd("VDD_SPI_EN_INIT", 0, 2, 7, 1, 3, "flash regulator init").hide(),
		fd("VDD_SPI_ENCURLIM", 0, 2, 8, 1, 3, "flash regulator current limit on").hide(),
		fd("VDD_SPI_DCURLIM", 0, 2, 9, 3, 3, "flash regulator current limit").hide(),
		fd("VDD_SPI_INIT", 0, 2, 12, 2, 3, "flash regulator output resistor").hide(),
		fd("VDD_SPI_DCAP", 0, 2, 14, 2, 3, "flash regulator overshoot guard").hide(),
		fd("WDT_DELAY_SEL", 0, 2, 16, 2, 3, "RTC watchdog timeout"),
	}
	fs = append(fs, s3c3SecurityWord2and3()...)
	fs = append(fs,
		fd("DIS_USB_JTAG", 0, 3, 22, 1, 2, "USB-Serial-JTAG cannot switch to JTAG"),
		fd("DIS_USB_SERIAL_JTAG", 0, 3, 23, 1, 2, "USB-Serial-JTAG device off").alias("DIS_USB_DEVICE"),
		fd("STRAP_JTAG_SEL", 0, 3, 24, 1, 2, "JTAG source chosen by strapping pin"),
		fd("USB_PHY_SEL", 0, 3, 25, 1, 2, "swap internal and external USB PHY"),
		fd("POWER_GLITCH_DSENSE", 0, 3, 26, 2, 17, "power-glitch detector sensitivity").hide(),
		fd("FLASH_TPUW", 0, 3, 28, 4, 18, "wait after flash power-up (ms)"),
	)
	fs = append(fs, s3c3Word4(true)...)
	fs = append(fs,
		fd("POWERGLITCH_EN", 0, 4, 30, 1, 17, "power-glitch reset").hide(),
		fd("DIS_USB_OTG_DOWNLOAD_MODE", 0, 4, 31, 1, 19, "no download over USB OTG"),
		fd("DISABLE_WAFER_VERSION_MAJOR", 0, 5, 0, 1, 19, "ignore WAFER_VERSION_MAJOR"),
		fd("DISABLE_BLK_VERSION_MAJOR", 0, 5, 1, 1, 19, "ignore BLK_VERSION_MAJOR"),
	)
	fs = append(fs, s3c3Block1()...)
	fs = append(fs,
		fd("PSRAM_CAP", 1, 4, 3, 2, 20, "in-package PSRAM size"),
		fd("PSRAM_TEMP", 1, 4, 5, 2, 20, "in-package PSRAM temperature grade"),
		fd("PSRAM_VENDOR", 1, 4, 7, 2, 20, "in-package PSRAM vendor"),
		fd("PSRAM_CAP_3", 1, 5, 19, 1, 20, "in-package PSRAM size, bit 2"),
	)
	fs = append(fs, s3c3Block1Tail()...)
	return append(fs, s3c3KeyFields()...)
}

// s3c3SecurityWord2and3 are the BLOCK0 word 2 and 3 security fields, at the
// same positions on both chips.
func s3c3SecurityWord2and3() []Field {
	return []Field{
		fd("SPI_BOOT_CRYPT_CNT", 0, 2, 18, 3, 4, "flash encryption on while 1 or 3 bits are set"),
		fd("SECURE_BOOT_KEY_REVOKE0", 0, 2, 21, 1, 5, "revoke the SECURE_BOOT_DIGEST0 key"),
		fd("SECURE_BOOT_KEY_REVOKE1", 0, 2, 22, 1, 6, "revoke the SECURE_BOOT_DIGEST1 key"),
		fd("SECURE_BOOT_KEY_REVOKE2", 0, 2, 23, 1, 7, "revoke the SECURE_BOOT_DIGEST2 key"),
		fd("KEY_PURPOSE_0", 0, 2, 24, 4, 8, "purpose of BLOCK_KEY0").alias("KEY0_PURPOSE"),
		fd("KEY_PURPOSE_1", 0, 2, 28, 4, 9, "purpose of BLOCK_KEY1").alias("KEY1_PURPOSE"),
		fd("KEY_PURPOSE_2", 0, 3, 0, 4, 10, "purpose of BLOCK_KEY2").alias("KEY2_PURPOSE"),
		fd("KEY_PURPOSE_3", 0, 3, 4, 4, 11, "purpose of BLOCK_KEY3").alias("KEY3_PURPOSE"),
		fd("KEY_PURPOSE_4", 0, 3, 8, 4, 12, "purpose of BLOCK_KEY4").alias("KEY4_PURPOSE"),
		fd("KEY_PURPOSE_5", 0, 3, 12, 4, 13, "purpose of BLOCK_KEY5").alias("KEY5_PURPOSE"),
		fd("SECURE_BOOT_EN", 0, 3, 20, 1, 15, "ROM checks the bootloader's Secure Boot v2 signature"),
		fd("SECURE_BOOT_AGGRESSIVE_REVOKE", 0, 3, 21, 1, 16, "ROM revokes a digest whose check fails"),
	}
}

// s3c3Word4 is BLOCK0 word 4 up to SECURE_VERSION; all of it is locked by
// WR_DIS bit 18. Some of it is hidden on C3 (flash fields).
func s3c3Word4(s3 bool) []Field {
	hideOnC3 := func(f Field) Field {
		if !s3 {
			f.Hidden = true
		}
		return f
	}
	return []Field{
		fd("DIS_DOWNLOAD_MODE", 0, 4, 0, 1, 18, "ROM download mode off"),
		fd("DIS_DIRECT_BOOT", 0, 4, 1, 1, 18, "no direct (legacy) SPI boot").alias("DIS_LEGACY_SPI_BOOT"),
		fd("DIS_USB_SERIAL_JTAG_ROM_PRINT", 0, 4, 2, 1, 18, "no ROM log on USB-Serial-JTAG").alias("UART_PRINT_CHANNEL"),
		hideOnC3(fd("FLASH_ECC_MODE", 0, 4, 3, 1, 18, "flash ECC mode")),
		fd("DIS_USB_SERIAL_JTAG_DOWNLOAD_MODE", 0, 4, 4, 1, 18, "no download over USB-Serial-JTAG").alias("DIS_USB_DOWNLOAD_MODE"),
		fd("ENABLE_SECURITY_DOWNLOAD", 0, 4, 5, 1, 18, "secure download mode: flash read/write/erase only, no register access"),
		fd("UART_PRINT_CONTROL", 0, 4, 6, 2, 18, "ROM log on UART"),
		hideOnC3(fd("PIN_POWER_SELECTION", 0, 4, 8, 1, 18, "GPIO33-37 power supply")),
		hideOnC3(fd("FLASH_TYPE", 0, 4, 9, 1, 18, "flash data lines")),
		hideOnC3(fd("FLASH_PAGE_SIZE", 0, 4, 10, 2, 18, "flash page size")),
		hideOnC3(fd("FLASH_ECC_EN", 0, 4, 12, 1, 18, "flash ECC on")),
		fd("FORCE_SEND_RESUME", 0, 4, 13, 1, 18, "ROM sends flash resume at boot"),
		fd("SECURE_VERSION", 0, 4, 14, 16, 18, "anti-rollback counter (thermometer code; shares WR_DIS bit 18)"),
	}
}
