package efuse

import "fuseline/esp/chip"

// Classic ESP32 (rev v3): four blocks with their own read and write windows
// (§1.2, §2.3). BLOCK1…3 follow CODING_SCHEME.
func esp32Blocks() []Block {
	return []Block{
		{Num: 0, Name: "BLOCK0", Words: 7, WrDis: -1, RdDis: -1, Coding: chip.CodingNone},
		{Num: 1, Name: "BLOCK1", Alias: []string{"flash_encryption"}, Words: 8, WrDis: 7, RdDis: 0, Coding: chip.CodingNone},
		{Num: 2, Name: "BLOCK2", Alias: []string{"secure_boot_v1", "secure_boot_v2"}, Words: 8, WrDis: 8, RdDis: 1, Coding: chip.CodingNone},
		{Num: 3, Name: "BLOCK3", Words: 8, WrDis: 9, RdDis: 2, Coding: chip.CodingNone},
	}
}

// esp32Postponed are the BLOCK0 fields held back to a second pass (§1.3).
func esp32Postponed() []string {
	return []string{"WR_DIS", "RD_DIS", "UART_DOWNLOAD_DIS", "ABS_DONE_1", "FLASH_CRYPT_CNT"}
}

// esp32Fields is the ESP32 v3 table (§3.6; positions and protection bits as
// in espefuse's esp32 definitions). Fields without a WR_DIS bit are factory
// values the hardware does not lock.
func esp32Fields() []Field {
	return []Field{
		fd("WR_DIS", 0, 0, 0, 16, 1, "write-protect bits; bit 1 protects WR_DIS itself"),
		fd("RD_DIS", 0, 0, 16, 4, 0, "read-protect bits: BLOCK1, BLOCK2, BLOCK3, and bit 3 the BLOCK0 key/coding group"),
		fd("FLASH_CRYPT_CNT", 0, 0, 20, 7, 2, "flash encryption on while an odd number of bits is set"),
		fd("UART_DOWNLOAD_DIS", 0, 0, 27, 1, 2, "UART download mode off"),
		fd("MAC", 0, 1, 0, 48, 3, "factory MAC address").kind(KindMAC).alias("MAC_FACTORY"),
		fd("MAC_CRC", 0, 2, 16, 8, 3, "CRC-8 of the factory MAC").alias("MAC_FACTORY_CRC"),
		fd("DISABLE_APP_CPU", 0, 3, 0, 1, 3, "second CPU off").alias("CHIP_VER_DIS_APP_CPU"),
		fd("DISABLE_BT", 0, 3, 1, 1, 3, "Bluetooth off").alias("CHIP_VER_DIS_BT"),
		fd("CHIP_PACKAGE_4BIT", 0, 3, 2, 1, -1, "package version, bit 3").alias("CHIP_VER_PKG_4BIT"),
		fd("DIS_CACHE", 0, 3, 3, 1, 3, "cache off").alias("CHIP_VER_DIS_CACHE"),
		fd("SPI_PAD_CONFIG_HD", 0, 3, 4, 5, -1, "SPI flash HD pad"),
		fd("CHIP_PACKAGE", 0, 3, 9, 3, -1, "package version").alias("CHIP_VER_PKG"),
		fd("CHIP_CPU_FREQ_LOW", 0, 3, 12, 1, -1, "CPU frequency limit flag"),
		fd("CHIP_CPU_FREQ_RATED", 0, 3, 13, 1, -1, "CPU frequency rated flag"),
		fd("BLK3_PART_RESERVE", 0, 3, 14, 1, 10, "BLOCK3 partly used for ADC calibration").rd(3),
		fd("CHIP_VER_REV1", 0, 3, 15, 1, -1, "revision bit 0"),
		fd("CLK8M_FREQ", 0, 4, 0, 8, 4, "8 MHz clock calibration").alias("CK8M_FREQ"),
		fd("ADC_VREF", 0, 4, 8, 5, 4, "ADC reference voltage calibration"),
		fd("XPD_SDIO_REG", 0, 4, 14, 1, 5, "flash regulator powered"),
		fd("XPD_SDIO_TIEH", 0, 4, 15, 1, 5, "flash voltage when forced").alias("SDIO_TIEH"),
		fd("XPD_SDIO_FORCE", 0, 4, 16, 1, 5, "flash voltage set by eFuse").alias("SDIO_FORCE"),
		fd("SPI_PAD_CONFIG_CLK", 0, 5, 0, 5, 6, "SPI flash CLK pad"),
		fd("SPI_PAD_CONFIG_Q", 0, 5, 5, 5, 6, "SPI flash Q pad"),
		fd("SPI_PAD_CONFIG_D", 0, 5, 10, 5, 6, "SPI flash D pad"),
		fd("SPI_PAD_CONFIG_CS0", 0, 5, 15, 5, 6, "SPI flash CS0 pad"),
		fd("CHIP_VER_REV2", 0, 5, 20, 1, -1, "revision bit 1"),
		fd("VOL_LEVEL_HP_INV", 0, 5, 22, 2, 3, "CPU voltage level at 240 MHz"),
		fd("WAFER_VERSION_MINOR", 0, 5, 24, 2, -1, "wafer minor version"),
		fd("FLASH_CRYPT_CONFIG", 0, 5, 28, 4, 10, "which key bits get the address tweak; production 0xF").rd(3).alias("ENCRYPT_CONFIG"),
		fd("CODING_SCHEME", 0, 6, 0, 2, 10, "BLOCK1-3 coding: 0 none, 1 3/4, 2 repeat").rd(3),
		fd("CONSOLE_DEBUG_DISABLE", 0, 6, 2, 1, 15, "ROM BASIC console off"),
		fd("DISABLE_SDIO_HOST", 0, 6, 3, 1, -1, "SDIO host off"),
		fd("ABS_DONE_0", 0, 6, 4, 1, 12, "Secure Boot v1 on"),
		fd("ABS_DONE_1", 0, 6, 5, 1, 13, "Secure Boot v2 on"),
		fd("JTAG_DISABLE", 0, 6, 6, 1, 14, "JTAG off").alias("DISABLE_JTAG"),
		fd("DISABLE_DL_ENCRYPT", 0, 6, 7, 1, 15, "no flash encryption in download mode"),
		fd("DISABLE_DL_DECRYPT", 0, 6, 8, 1, 15, "no flash decryption in download mode"),
		fd("DISABLE_DL_CACHE", 0, 6, 9, 1, 15, "no flash cache in download mode"),
		fd("KEY_STATUS", 0, 6, 10, 1, 10, "BLOCK3 usage flag").rd(3),
		fd("BLOCK1", 1, 0, 0, 256, 7, "flash-encryption key (stored reversed)").rd(0).alias("ENCRYPT_FLASH_KEY"),
		fd("BLOCK2", 2, 0, 0, 256, 8, "Secure Boot v2 digest or v1 key").rd(1).alias("SECURE_BOOT_KEY"),
		fd("BLOCK3", 3, 0, 0, 256, 9, "user data, custom MAC, secure version").rd(2),
		fd("CUSTOM_MAC_CRC", 3, 0, 0, 8, 9, "CRC-8 of CUSTOM_MAC").rd(2).alias("MAC_CUSTOM_CRC"),
		fd("CUSTOM_MAC", 3, 0, 8, 48, 9, "custom MAC address (natural byte order)").rd(2).kind(KindCustomMAC).alias("MAC_CUSTOM"),
		fd("SECURE_VERSION", 3, 4, 0, 32, 9, "anti-rollback counter (ESP-IDF convention, thermometer code)").rd(2),
		fd("MAC_VERSION", 3, 5, 24, 8, 9, "1 = use CUSTOM_MAC").rd(2).alias("MAC_CUSTOM_VER"),
	}
}
